package serve

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lighttransfer/lighttransfer-go/internal/testutil"
	"github.com/lighttransfer/lighttransfer-go/kvcache"
	"github.com/lighttransfer/lighttransfer-go/loader"
	"github.com/lighttransfer/lighttransfer-go/model"
)

func stories(t testing.TB) *model.Model {
	t.Helper()
	m, err := model.Load(context.Background(), testutil.Testdata(t, "stories260K"))
	require.NoError(t, err)
	t.Cleanup(m.Close)
	return m
}

// testMode selects lazy layers on prompts of stories260K's length (sink+window 18 < prompt).
func testMode() model.SessionOption {
	return model.TestMode(model.WithSink(2), model.WithWindow(16), model.WithLast(8))
}

func fixedMode() model.SessionOption {
	return model.FixedMode([]int{1, 3}, model.WithSink(2), model.WithWindow(16))
}

// promptTokens returns a prompt of about n tokens: BOS and words of stories260K's vocabulary.
func promptTokens(t testing.TB, m *model.Model, n int, seed uint64) []int32 {
	t.Helper()
	words := strings.Fields("once upon a time there was a little girl named lily she liked to play in the park with her dog and the sun was big")
	r := rand.New(rand.NewPCG(seed, 7))
	var b strings.Builder
	for b.Len() < 4*n {
		b.WriteString(words[r.IntN(len(words))])
		b.WriteByte(' ')
	}
	ids, err := m.PromptTokens(b.String())
	require.NoError(t, err)
	return ids[:min(n, len(ids))]
}

// lone is the reference: GenerateTokens of req by itself.
func lone(t testing.TB, m *model.Model, req Request) model.Result {
	t.Helper()
	opts := []model.GenerateOption{model.WithSampling(req.Sampling), model.WithStop(req.Stop...),
		model.WithSessionOptions(req.Session...)}
	if req.MaxTokens > 0 {
		opts = append(opts, model.WithMaxTokens(req.MaxTokens))
	}
	if req.IgnoreEOS {
		opts = append(opts, model.WithIgnoreEOS())
	}
	res, err := m.GenerateTokens(context.Background(), req.Tokens, opts...)
	require.NoError(t, err)
	return res
}

// requireSame checks that got is the lone result want.
func requireSame(t testing.TB, want, got model.Result, msg string) {
	t.Helper()
	require.Equal(t, want.Tokens, got.Tokens, msg)
	require.Equal(t, want.Text, got.Text, msg)
	require.Equal(t, want.Finish, got.Finish, msg)
	require.Equal(t, want.GeneratedTokens, got.GeneratedTokens, msg)
	require.Equal(t, want.PromptTokens, got.PromptTokens, msg)
	require.Equal(t, want.Lazy, got.Lazy, msg)
}

// mixedRequests returns n requests of mixed prompt lengths, modes, chunk sizes, budgets,
// sampling and stop strings.
func mixedRequests(t testing.TB, m *model.Model, n int) []Request {
	modes := [][]model.SessionOption{
		{model.FullAttention()},
		{testMode()},
		{fixedMode()},
		{model.FullAttention(), model.WithChunkSize(16)},
		{fixedMode(), model.WithChunkSize(24)},
	}
	var reqs []Request
	for i := range n {
		req := Request{
			Tokens:    promptTokens(t, m, 20+37*i%180, uint64(i)),
			MaxTokens: 8 + 11*i%40,
			Session:   modes[i%len(modes)],
			IgnoreEOS: i%3 == 0,
		}
		if i%4 == 1 {
			req.Sampling = model.Sampling{Temperature: 0.9, TopP: 0.95, Seed: uint64(100 + i)}
		}
		if i%5 == 2 {
			req.Stop = []string{"the park"}
		}
		reqs = append(reqs, req)
	}
	return reqs
}

// TestMatchesGenerate: requests of mixed prompt lengths and modes (full, Test, fixed, with
// chunked prefills), arriving at different times and batched together, each get exactly the
// result of a lone GenerateTokens: same tokens, text, finish reason and lazy layers. Greedy
// and seeded sampling alike (each request samples with its own seeded sampler).
func TestMatchesGenerate(t *testing.T) {
	m := stories(t)
	reqs := mixedRequests(t, m, 15)
	want := make([]model.Result, len(reqs))
	for i, req := range reqs {
		want[i] = lone(t, m, req)
	}
	for _, c := range []struct {
		name string
		opts []Option
	}{
		{"batch1", []Option{WithMaxBatch(1)}},
		{"batch16", nil},
		{"batch4-step32", []Option{WithMaxBatch(4), WithStepTokens(32)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, err := New(m, c.opts...)
			require.NoError(t, err)
			defer e.Close()
			got := make([]model.Result, len(reqs))
			var wg sync.WaitGroup
			for i, req := range reqs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					time.Sleep(time.Duration(i%4) * 3 * time.Millisecond) // staggered arrivals
					var streamed strings.Builder
					req.Stream = func(tok model.Token) error { streamed.WriteString(tok.Text); return nil }
					res, err := e.Submit(context.Background(), req)
					if err == nil && streamed.String() != res.Text {
						err = fmt.Errorf("streamed %q, result %q", streamed.String(), res.Text)
					}
					require.NoError(t, err)
					got[i] = res
				}()
			}
			wg.Wait()
			for i := range reqs {
				requireSame(t, want[i], got[i], fmt.Sprintf("request %d", i))
			}
			require.NoError(t, e.Shutdown(context.Background()))
			st := e.Stats()
			require.Equal(t, int64(len(reqs)), st.Completed)
			require.Zero(t, st.Running+st.Waiting)
			require.Zero(t, st.KVReserved)
			require.Zero(t, e.st.overCharge)
		})
	}
}

// TestMatchesGenerateRandom: the same on a random-weight model whose widths are not multiples
// of the kernels' vector widths, with reduced-precision KV caches, many requests at once and
// a small step budget (prefill chunks of several requests share steps with decodes).
func TestMatchesGenerateRandom(t *testing.T) {
	cfg := loader.Config{ModelType: "qwen2", HiddenSize: 88, IntermediateSize: 200, NumLayers: 4,
		NumHeads: 4, NumKVHeads: 2, HeadDim: 22, VocabSize: 97, MaxPositions: 512,
		RMSNormEps: 1e-6, RopeTheta: 1e4, TieEmbeddings: true, AttentionBias: true, HiddenAct: "silu"}
	m, err := model.Random(context.Background(), cfg, 5)
	require.NoError(t, err)
	defer m.Close()
	modes := [][]model.SessionOption{
		{model.FullAttention(), model.WithChunkSize(16)},
		{testMode(), model.WithKV(kvcache.Q8)},
		{model.FixedMode([]int{0, 2}, model.WithSink(1), model.WithWindow(9)), model.WithKV(kvcache.BF16), model.WithChunkSize(8)},
		{model.FullAttention(), model.WithKV(kvcache.Q8), model.WithChunkSize(32)},
	}
	r := rand.New(rand.NewPCG(9, 9))
	var reqs []Request
	for i := range 12 {
		toks := make([]int32, 1+r.IntN(90))
		for j := range toks {
			toks[j] = int32(r.IntN(cfg.VocabSize))
		}
		reqs = append(reqs, Request{Tokens: toks, MaxTokens: 4 + r.IntN(20), Session: modes[i%len(modes)], IgnoreEOS: true})
	}
	e, err := New(m, WithStepTokens(40))
	require.NoError(t, err)
	defer e.Close()
	got := make([]model.Result, len(reqs))
	errs := make([]error, len(reqs))
	var wg sync.WaitGroup
	for i, req := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i%3) * 2 * time.Millisecond)
			got[i], errs[i] = e.Submit(context.Background(), req)
		}()
	}
	wg.Wait()
	for i, req := range reqs {
		require.NoError(t, errs[i])
		requireSame(t, lone(t, m, req), got[i], fmt.Sprintf("request %d", i))
	}
	require.Zero(t, e.st.overCharge)
}

// TestCancel: a request cancelled mid-prefill and one cancelled mid-decode end at the next
// step with FinishCanceled, ctx's error and what they had generated (a prefix of their lone
// result); their bytes are freed and the request still running is unaffected.
func TestCancel(t *testing.T) {
	m := stories(t)
	e, err := New(m, WithStepTokens(24))
	require.NoError(t, err)
	defer e.Close()
	a := Request{Tokens: promptTokens(t, m, 30, 1), MaxTokens: 60, IgnoreEOS: true}
	b := Request{Tokens: promptTokens(t, m, 200, 2), MaxTokens: 20, Session: []model.SessionOption{model.WithChunkSize(8)}}
	c := Request{Tokens: promptTokens(t, m, 12, 3), MaxTokens: 100, IgnoreEOS: true, Session: []model.SessionOption{testMode()}}
	wantA, wantC := lone(t, m, a), lone(t, m, c)
	ctxB, cancelB := context.WithCancel(context.Background())
	ctxC, cancelC := context.WithCancel(context.Background())
	defer cancelB()
	defer cancelC()
	var resB, resC model.Result
	var errB, errC error
	var wg sync.WaitGroup
	var reservedAlone int64
	chargeA, err := m.EstimateKV(len(a.Tokens) + a.MaxTokens)
	require.NoError(t, err)
	a.Stream = func(tok model.Token) error {
		switch tok.Index {
		case 0: // b and c arrive once a runs, and are admitted at once
			wg.Add(2)
			go func() { defer wg.Done(); resB, errB = e.Submit(ctxB, b) }()
			go func() { defer wg.Done(); resC, errC = e.Submit(ctxC, c) }()
			require.Eventually(t, func() bool { return e.Stats().Running == 3 }, 10*time.Second, time.Millisecond)
		case 3: // b is still prefilling (25 chunks of 8, one or two a step)
			cancelB()
		case 20: // c is decoding
			cancelC()
		case 22:
			reservedAlone = e.Stats().KVReserved
		}
		return nil
	}
	gotA, err := e.Submit(context.Background(), a)
	require.NoError(t, err)
	wg.Wait()
	requireSame(t, wantA, gotA, "a")

	require.ErrorIs(t, errB, context.Canceled)
	require.Equal(t, model.FinishCanceled, resB.Finish)
	require.Zero(t, resB.GeneratedTokens)

	require.ErrorIs(t, errC, context.Canceled)
	require.Equal(t, model.FinishCanceled, resC.Finish)
	require.Positive(t, resC.GeneratedTokens)
	require.Less(t, resC.GeneratedTokens, c.MaxTokens)
	require.Equal(t, wantC.Tokens[:len(resC.Tokens)], resC.Tokens)

	require.Equal(t, chargeA, reservedAlone) // b's and c's bytes were freed
	st := e.Stats()
	require.Equal(t, int64(2), st.Canceled)
	require.Equal(t, int64(1), st.Completed)
	require.Zero(t, st.KVReserved)
}

// TestOverload: with one running slot and a queue of one, a third request fails at once with
// ErrOverloaded; a queued request whose context ends leaves the queue at once; the others
// complete unchanged.
func TestOverload(t *testing.T) {
	m := stories(t)
	e, err := New(m, WithMaxBatch(1), WithQueue(1))
	require.NoError(t, err)
	defer e.Close()
	release := make(chan struct{})
	a := Request{Tokens: promptTokens(t, m, 20, 1), MaxTokens: 10, IgnoreEOS: true}
	wantA := lone(t, m, a)
	a.Stream = func(tok model.Token) error {
		if tok.Index == 0 {
			<-release
		}
		return nil
	}
	var wg sync.WaitGroup
	var gotA model.Result
	var errA error
	wg.Add(1)
	go func() { defer wg.Done(); gotA, errA = e.Submit(context.Background(), a) }()
	require.Eventually(t, func() bool { return e.Stats().Running == 1 }, 10*time.Second, time.Millisecond)

	b := Request{Tokens: promptTokens(t, m, 25, 2), MaxTokens: 5}
	ctxB, cancelB := context.WithCancel(context.Background())
	var errB error
	var resB model.Result
	wg.Add(1)
	go func() { defer wg.Done(); resB, errB = e.Submit(ctxB, b) }()
	require.Eventually(t, func() bool { return e.Stats().Waiting == 1 }, 10*time.Second, time.Millisecond)

	_, err = e.Submit(context.Background(), Request{Tokens: promptTokens(t, m, 5, 3), MaxTokens: 5})
	require.ErrorIs(t, err, ErrOverloaded)
	require.Equal(t, int64(1), e.Stats().Rejected)

	cancelB()
	require.Eventually(t, func() bool { return e.Stats().Waiting == 0 }, 10*time.Second, time.Millisecond)
	d := Request{Tokens: promptTokens(t, m, 15, 4), MaxTokens: 8}
	var gotD model.Result
	var errD error
	wg.Add(1)
	go func() { defer wg.Done(); gotD, errD = e.Submit(context.Background(), d) }()
	require.Eventually(t, func() bool { return e.Stats().Waiting == 1 }, 10*time.Second, time.Millisecond)
	close(release)
	wg.Wait()
	require.ErrorIs(t, errB, context.Canceled)
	require.Equal(t, model.FinishCanceled, resB.Finish)
	require.NoError(t, errA)
	require.NoError(t, errD)
	requireSame(t, wantA, gotA, "a")
	requireSame(t, lone(t, m, d), gotD, "d")
}

// TestShutdown: Shutdown with requests running and queued lets every one of them finish with
// its lone result while later Submits fail with ErrClosed; a Shutdown whose ctx ends first
// cancels them (errors wrapping ErrClosed, what they generated kept) and returns ctx's error.
func TestShutdown(t *testing.T) {
	m := stories(t)
	var reqs []Request
	var want []model.Result
	for i := range 5 {
		req := Request{Tokens: promptTokens(t, m, 10+20*i, uint64(i)), MaxTokens: 30, IgnoreEOS: true}
		reqs = append(reqs, req)
		want = append(want, lone(t, m, req))
	}
	// submitAll submits every request with stream and waits until two run and three wait.
	submitAll := func(e *Engine, stream func(model.Token) error) ([]model.Result, []error, *sync.WaitGroup) {
		got := make([]model.Result, len(reqs))
		errs := make([]error, len(reqs))
		var wg sync.WaitGroup
		for i, req := range reqs {
			req.Stream = stream
			wg.Add(1)
			go func() { defer wg.Done(); got[i], errs[i] = e.Submit(context.Background(), req) }()
		}
		require.Eventually(t, func() bool { st := e.Stats(); return st.Running == 2 && st.Waiting == 3 }, 10*time.Second, time.Millisecond)
		return got, errs, &wg
	}

	e, err := New(m, WithMaxBatch(2))
	require.NoError(t, err)
	gate := make(chan struct{})
	got, errs, wg := submitAll(e, func(model.Token) error { <-gate; return nil })
	shut := make(chan error, 1)
	go func() { shut <- e.Shutdown(context.Background()) }()
	require.Eventually(t, e.isClosed, 10*time.Second, time.Millisecond)
	_, err = e.Submit(context.Background(), reqs[0])
	require.ErrorIs(t, err, ErrClosed)
	close(gate)
	require.NoError(t, <-shut)
	wg.Wait()
	for i := range reqs {
		require.NoError(t, errs[i])
		requireSame(t, want[i], got[i], fmt.Sprintf("request %d", i))
	}
	require.Equal(t, int64(len(reqs)), e.Stats().Completed)
	require.NoError(t, e.Close())

	e, err = New(m, WithMaxBatch(2))
	require.NoError(t, err)
	got, errs, wg = submitAll(e, func(model.Token) error { time.Sleep(2 * time.Millisecond); return nil })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, e.Shutdown(ctx), context.DeadlineExceeded)
	wg.Wait()
	for i := range reqs {
		require.ErrorIs(t, errs[i], ErrClosed, "request %d", i)
		require.Equal(t, model.FinishCanceled, got[i].Finish, "request %d", i)
		require.Less(t, got[i].GeneratedTokens, reqs[i].MaxTokens, "request %d", i)
		if len(got[i].Tokens) > 0 {
			require.Equal(t, want[i].Tokens[:len(got[i].Tokens)], got[i].Tokens, "request %d", i)
		}
	}
	st := e.Stats()
	require.Equal(t, int64(len(reqs)), st.Canceled)
	require.Zero(t, st.Running+st.Waiting)
	require.NoError(t, e.Close())
}

// TestBudget: the running sequences' charges never exceed the budget, nor the bytes they
// hold; with 2.5 full-attention estimates full attention runs two requests at once, while
// Test mode, charged its full estimate until its prefill has made layers streaming, then
// the estimate of its actual layers, admits a third. Results stay the lone ones.
func TestBudget(t *testing.T) {
	m := stories(t)
	const prompt, maxTokens = 200, 40
	full, err := m.EstimateKV(prompt + maxTokens)
	require.NoError(t, err)
	budget := full * 5 / 2
	for _, c := range []struct {
		mode    model.SessionOption
		running int
	}{{model.FullAttention(), 2}, {testMode(), 3}} {
		t.Run(fmt.Sprint(c.running), func(t *testing.T) {
			e, err := New(m, WithKVBudget(budget))
			require.NoError(t, err)
			defer e.Close()
			var mu sync.Mutex
			peak := 0
			var over []string
			watch := func(model.Token) error {
				st := e.Stats()
				mu.Lock()
				defer mu.Unlock()
				peak = max(peak, st.Running)
				if st.KVReserved > budget || st.KVBytes > budget {
					over = append(over, fmt.Sprintf("reserved %d held %d", st.KVReserved, st.KVBytes))
				}
				return nil
			}
			var reqs []Request
			var want []model.Result
			for i := range 6 {
				req := Request{Tokens: promptTokens(t, m, prompt, uint64(i)), MaxTokens: maxTokens, IgnoreEOS: true,
					Session: []model.SessionOption{c.mode}}
				want = append(want, lone(t, m, req))
				req.Stream = watch
				reqs = append(reqs, req)
			}
			got := make([]model.Result, len(reqs))
			errs := make([]error, len(reqs))
			var wg sync.WaitGroup
			for i, req := range reqs {
				wg.Add(1)
				go func() { defer wg.Done(); got[i], errs[i] = e.Submit(context.Background(), req) }()
			}
			wg.Wait()
			for i := range reqs {
				require.NoError(t, errs[i])
				requireSame(t, want[i], got[i], fmt.Sprintf("request %d", i))
			}
			require.Empty(t, over)
			require.Equal(t, c.running, peak)
			st := e.Stats()
			require.LessOrEqual(t, st.KVPeakReserved, budget)
			require.LessOrEqual(t, st.KVPeak, budget)
			require.Zero(t, e.st.overCharge)

			small, err := New(m, WithKVBudget(full-1))
			require.NoError(t, err)
			defer small.Close()
			_, err = small.Submit(context.Background(), Request{Tokens: reqs[0].Tokens, MaxTokens: maxTokens, Session: []model.SessionOption{c.mode}})
			require.ErrorIs(t, err, ErrTooLarge)
			require.Equal(t, int64(1), small.Stats().Rejected)
		})
	}
}

// TestErrors: bad options and requests fail at once with errors naming what is wrong; a
// stream callback's error ends the request with that error, model.ErrStop ends it normally.
func TestErrors(t *testing.T) {
	m := stories(t)
	for _, o := range []Option{WithMaxBatch(0), WithQueue(-1), WithStepTokens(0), WithKVBudget(-1)} {
		_, err := New(m, o)
		require.ErrorIs(t, err, model.ErrOption)
	}
	e, err := New(m, nil)
	require.NoError(t, err)
	ctx := context.Background()
	for name, c := range map[string]struct {
		req  Request
		want error
	}{
		"two prompts":   {Request{Prompt: "hi", Tokens: []int32{1, 2}}, model.ErrOption},
		"two modes":     {Request{Prompt: "hi", Session: []model.SessionOption{testMode(), model.FullAttention()}}, model.ErrOption},
		"max tokens":    {Request{Prompt: "hi", MaxTokens: -1}, model.ErrOption},
		"empty stop":    {Request{Prompt: "hi", Stop: []string{""}}, model.ErrOption},
		"context":       {Request{Tokens: promptTokens(t, m, 300, 1), MaxTokens: 300}, model.ErrContext},
		"empty tokens":  {Request{Tokens: []int32{}}, model.ErrOption},
		"bad token":     {Request{Tokens: []int32{1, 9999}, MaxTokens: 3}, model.ErrToken},
		"bad sampling":  {Request{Prompt: "hi", Sampling: model.Sampling{Temperature: -1}}, model.ErrOption},
		"small context": {Request{Prompt: "once upon a time", MaxTokens: 10, Session: []model.SessionOption{model.WithMaxContext(8)}}, model.ErrContext},
	} {
		_, err := e.Submit(ctx, c.req)
		require.ErrorIs(t, err, c.want, name)
	}

	boom := errors.New("boom")
	res, err := e.Submit(ctx, Request{Prompt: "Once upon a time", MaxTokens: 20, IgnoreEOS: true,
		Stream: func(tok model.Token) error {
			if tok.Index == 3 {
				return boom
			}
			return nil
		}})
	require.ErrorIs(t, err, boom)
	require.Equal(t, 4, res.GeneratedTokens)
	res, err = e.Submit(ctx, Request{Prompt: "Once upon a time", MaxTokens: 20, IgnoreEOS: true,
		Stream: func(tok model.Token) error {
			if tok.Index == 3 {
				return model.ErrStop
			}
			return nil
		}})
	require.NoError(t, err)
	require.Equal(t, model.FinishCallback, res.Finish)

	// A plain-text prompt is encoded as Generate encodes it.
	want, err := m.Generate(ctx, "Once upon a time", model.WithMaxTokens(30))
	require.NoError(t, err)
	got, err := e.Submit(ctx, Request{Prompt: "Once upon a time", MaxTokens: 30})
	require.NoError(t, err)
	requireSame(t, want, got, "prompt")

	st := e.Stats()
	require.Equal(t, int64(1), st.Failed)
	require.Equal(t, int64(2), st.Completed)
	require.NoError(t, e.Close())
	require.NoError(t, e.Close())
	_, err = e.Submit(ctx, Request{Prompt: "hi"})
	require.ErrorIs(t, err, ErrClosed)
	require.NoError(t, e.Shutdown(ctx))
}
