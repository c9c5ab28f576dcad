package model_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lighttransfer/lighttransfer-go/layerselect"
	"github.com/lighttransfer/lighttransfer-go/loader/tokenizer"
	"github.com/lighttransfer/lighttransfer-go/model"
)

// randomModel is a small random-weight Llama model (4 layers, vocab 64) for misuse tests.
func randomModel(t testing.TB, maxPos int, opts ...model.LoadOption) *model.Model {
	t.Helper()
	m, err := model.Random(context.Background(), smallConfig(4, maxPos), 11, opts...)
	require.NoError(t, err)
	t.Cleanup(m.Close)
	return m
}

// TestClosedModel: after Close every computing method of the Model, and Next, Forward, Clone
// and MakeStreaming of a session made before, return ErrClosed instead of panicking.
func TestClosedModel(t *testing.T) {
	ctx := context.Background()
	m := stories(t)
	s, err := m.NewSession()
	require.NoError(t, err)
	_, err = s.Next(ctx, []int32{1, 403})
	require.NoError(t, err)
	m.Close()
	m.Close() // idempotent

	_, err = m.NewSession()
	require.ErrorIs(t, err, model.ErrClosed)
	_, err = m.Generate(ctx, "Once")
	require.ErrorIs(t, err, model.ErrClosed)
	_, err = m.GenerateTokens(ctx, []int32{1})
	require.ErrorIs(t, err, model.ErrClosed)
	_, err = m.Chat(ctx, []tokenizer.Message{{Role: "user", Content: "hi"}})
	require.ErrorIs(t, err, model.ErrClosed)
	_, err = m.GenerateBatch(ctx, []string{"Once", "Lily"})
	require.ErrorIs(t, err, model.ErrClosed)
	_, err = m.GenerateTokensBatch(ctx, [][]int32{{1}})
	require.ErrorIs(t, err, model.ErrClosed)

	_, err = s.Next(ctx, []int32{5})
	require.ErrorIs(t, err, model.ErrClosed)
	_, err = s.Forward(ctx, []int32{5})
	require.ErrorIs(t, err, model.ErrClosed)
	_, err = s.Clone()
	require.ErrorIs(t, err, model.ErrClosed)
	require.ErrorIs(t, s.MakeStreaming(1), model.ErrClosed)
	_, err = m.NewBatch().Step(ctx, []*model.Session{s}, []int32{5})
	require.ErrorIs(t, err, model.ErrClosed)
	require.Equal(t, 2, s.Pos(), "failed calls must not advance the session")
}

// TestClosedSession: a closed Session's methods return errors wrapping ErrClosed.
func TestClosedSession(t *testing.T) {
	ctx := context.Background()
	m := randomModel(t, 256)
	s, err := m.NewSession()
	require.NoError(t, err)
	_, err = s.Next(ctx, []int32{1, 2})
	require.NoError(t, err)
	s.Close()
	s.Close()
	_, err = s.Next(ctx, []int32{3})
	require.ErrorIs(t, err, model.ErrClosed)
	_, err = s.Forward(ctx, []int32{3})
	require.ErrorIs(t, err, model.ErrClosed)
	_, err = s.Clone()
	require.ErrorIs(t, err, model.ErrClosed)
	require.ErrorIs(t, s.MakeStreaming(1), model.ErrClosed)
	_, err = m.NewBatch().Step(ctx, []*model.Session{s}, []int32{3})
	require.ErrorIs(t, err, model.ErrClosed)
	require.Contains(t, err.Error(), "batch session 0")
}

// TestCloseWhileGenerating closes a Model while generations run. Each generation has produced
// at least four tokens and is parked in its stream callback when Close is called; Close must
// return (no forward step is in flight), and every generation then ends with ErrClosed and the
// tokens it produced so far.
func TestCloseWhileGenerating(t *testing.T) {
	m := randomModel(t, 4096)
	const n = 4
	var ready sync.WaitGroup
	ready.Add(n)
	release := make(chan struct{})
	results := make([]model.Result, n)
	errs := make([]error, n)
	var done sync.WaitGroup
	for g := range n {
		done.Add(1)
		go func() {
			defer done.Done()
			results[g], errs[g] = m.GenerateTokens(context.Background(), randomTokens(20, 64, uint64(g)),
				model.WithMaxTokens(4000), model.WithIgnoreEOS(),
				model.WithStream(func(tk model.Token) error {
					if tk.Index == 3 {
						ready.Done()
						<-release
					}
					return nil
				}))
		}()
	}
	ready.Wait()
	m.Close()
	close(release)
	done.Wait()
	for g := range n {
		require.ErrorIs(t, errs[g], model.ErrClosed, "generation %d", g)
		require.Equal(t, 4, results[g].GeneratedTokens, "generation %d", g)
		require.Len(t, results[g].Tokens, 4)
	}
}

// TestCloseRacesGenerations calls Close at seeded random moments while generations and
// Test-mode prefills run (run under -race). Close waits for the forward steps in flight; each
// call ends either normally or with ErrClosed, never with a panic or another error, and after
// Close returns no call succeeds.
func TestCloseRacesGenerations(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	for trial := range 6 {
		m := randomModel(t, 4096)
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if g%2 == 0 {
					_, err := m.GenerateTokens(context.Background(), randomTokens(40, 64, uint64(g)),
						model.WithMaxTokens(300), model.WithIgnoreEOS())
					errs <- err
					return
				}
				s, err := m.NewSession(model.TestMode(model.WithSink(4), model.WithWindow(32), model.WithLast(8)))
				if err != nil {
					errs <- err
					return
				}
				_, err = s.Forward(context.Background(), randomTokens(1500, 64, uint64(g)))
				if errors.Is(err, model.ErrClosed) && s.Pos() != 0 && s.Pos() != 1500 {
					err = errors.New("a stopped selecting prefill left the session half way")
				}
				errs <- err
			}()
		}
		time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
		m.Close()
		_, err := m.GenerateTokens(context.Background(), []int32{1})
		require.ErrorIs(t, err, model.ErrClosed)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				require.ErrorIs(t, err, model.ErrClosed, "trial %d", trial)
			}
		}
	}
}

// TestNilOptions: nil options of every kind are ignored.
func TestNilOptions(t *testing.T) {
	ctx := context.Background()
	m, err := model.Random(ctx, smallConfig(2, 128), 1, nil)
	require.NoError(t, err)
	defer m.Close()
	s, err := m.NewSession(nil)
	require.NoError(t, err)
	require.Equal(t, model.ModeFull, s.Mode())
	s, err = m.NewSession(model.TestMode(nil), nil)
	require.NoError(t, err)
	require.Equal(t, model.ModeTest, s.Mode())
	_, err = m.NewSession(model.FixedMode([]int{1}, nil))
	require.NoError(t, err)
	res, err := m.GenerateTokens(ctx, []int32{1, 2}, nil, model.WithMaxTokens(3), model.WithSessionOptions(nil))
	require.NoError(t, err)
	require.Equal(t, 3, res.GeneratedTokens)
	_, err = m.GenerateTokensBatch(ctx, [][]int32{{1}}, nil)
	require.NoError(t, err)
	_, err = model.Load(ctx, t.TempDir(), nil)
	require.NotErrorIs(t, err, model.ErrOption) // fails on the empty directory, not on the option
}

// TestBatchNilSession: a nil session in Batch.Step is an error naming its index, and the other
// sessions do not advance.
func TestBatchNilSession(t *testing.T) {
	ctx := context.Background()
	m := randomModel(t, 128)
	a, err := m.NewSession()
	require.NoError(t, err)
	_, err = m.NewBatch().Step(ctx, []*model.Session{a, nil}, []int32{1, 2})
	require.ErrorIs(t, err, model.ErrOption)
	require.Contains(t, err.Error(), "session 1 is nil")
	require.Zero(t, a.Pos())
}

// TestOptionValues: option values outside their range fail with ErrOption; 0 is no exception.
func TestOptionValues(t *testing.T) {
	ctx := context.Background()
	_, err := model.Load(ctx, t.TempDir(), model.WithWeightFormat(model.WeightFormat(7)))
	require.ErrorIs(t, err, model.ErrOption)
	require.Contains(t, err.Error(), "weight format 7")
	require.Equal(t, 1, strings.Count(err.Error(), "model:"), err.Error())
	_, err = model.Random(ctx, smallConfig(2, 64), 1, model.WithWeightFormat(-1))
	require.ErrorIs(t, err, model.ErrOption)

	m := randomModel(t, 512)
	for name, opt := range map[string]model.SessionOption{
		"max context 0":        model.WithMaxContext(0),
		"max context -1":       model.WithMaxContext(-1),
		"max context too big":  model.WithMaxContext(513),
		"chunk 0":              model.WithChunkSize(0),
		"chunk -4":             model.WithChunkSize(-4),
		"keep in fixed mode":   model.FixedMode([]int{1}, model.WithKeep(0.5)),
		"w_last in fixed mode": model.FixedMode([]int{1}, model.WithLast(8)),
	} {
		_, err := m.NewSession(opt)
		require.ErrorIs(t, err, model.ErrOption, name)
		require.Equal(t, 1, strings.Count(err.Error(), "model:"), err.Error())
	}
	plan := layerselect.Plan{Layers: 4, Lazy: []int{1}, Sink: 4, Window: 16}
	for name, opts := range map[string][]model.SessionOption{
		"full and test":  {model.FullAttention(), model.TestMode()},
		"test and fixed": {model.TestMode(), model.FixedMode([]int{1})},
		"fixed and plan": {model.FixedMode([]int{1}), model.WithPlan(plan)},
		"test twice":     {model.TestMode(model.WithKeep(0.5)), model.TestMode()},
	} {
		_, err := m.NewSession(opts...)
		require.ErrorIs(t, err, model.ErrOption, name)
		require.Contains(t, err.Error(), "two attention modes", name)
	}
	s, err := m.NewSession(model.WithMaxContext(1), model.WithChunkSize(1))
	require.NoError(t, err)
	require.Equal(t, 1, s.MaxContext())
	_, err = m.NewSession(model.TestMode(model.WithKeep(0.75), model.WithLast(4), model.WithSink(0), model.WithWindow(8)))
	require.NoError(t, err)
	_, err = m.NewSession(model.WithPlan(plan))
	require.NoError(t, err)
}

// TestErrorsNotDoublePrefixed: wrapped errors name the package once.
func TestErrorsNotDoublePrefixed(t *testing.T) {
	ctx := context.Background()
	m := randomModel(t, 128)
	_, err := m.GenerateTokensBatch(ctx, [][]int32{{1}, {}})
	require.ErrorIs(t, err, model.ErrOption)
	require.Equal(t, "model: prompt 1: invalid option: empty prompt", err.Error())
	_, err = m.GenerateTokensBatch(ctx, [][]int32{{1}}, model.WithSessionOptions(model.WithChunkSize(0)))
	require.ErrorIs(t, err, model.ErrOption)
	require.Equal(t, 1, strings.Count(err.Error(), "model:"), err.Error())
	s, err := m.NewSession()
	require.NoError(t, err)
	_, err = m.NewBatch().Step(ctx, []*model.Session{s}, []int32{99})
	require.ErrorIs(t, err, model.ErrToken)
	require.Equal(t, 1, strings.Count(err.Error(), "model:"), err.Error())
	require.Contains(t, err.Error(), "batch session 0")
}

// TestPromptInvalidUTF8: Generate and GenerateBatch wrap the tokenizer's sentinel and name the
// byte offset, as Chat does.
func TestPromptInvalidUTF8(t *testing.T) {
	ctx := context.Background()
	m := stories(t)
	_, err := m.Generate(ctx, "Once\xffupon")
	require.ErrorIs(t, err, tokenizer.ErrInvalidUTF8)
	require.Contains(t, err.Error(), "byte offset 4")
	_, err = m.GenerateBatch(ctx, []string{"Once", "ab\xfe"})
	require.ErrorIs(t, err, tokenizer.ErrInvalidUTF8)
	require.Contains(t, err.Error(), "prompt 1")
	require.Contains(t, err.Error(), "byte offset 2")
	require.Equal(t, 1, strings.Count(err.Error(), "model:"), err.Error())
	_, err = m.Chat(ctx, []tokenizer.Message{{Role: "user", Content: "x\xffy"}})
	if !errors.Is(err, tokenizer.ErrNoTemplate) {
		require.ErrorIs(t, err, tokenizer.ErrInvalidUTF8)
		require.Contains(t, err.Error(), "byte offset")
	}
}

// TestNoLoggingByDefault: Load and generation write nothing to slog's default logger; with
// WithLogger, Load reports there.
func TestNoLoggingByDefault(t *testing.T) {
	var buf bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	defer slog.SetDefault(old)
	ctx := context.Background()
	m := loadModel(t, storiesDir)
	_, err := m.Generate(ctx, "Once", model.WithMaxTokens(5))
	require.NoError(t, err)
	require.Empty(t, buf.String())

	var mine bytes.Buffer
	loadModel(t, storiesDir, model.WithLogger(slog.New(slog.NewTextHandler(&mine, nil))))
	require.Contains(t, mine.String(), "model loaded")
	require.Empty(t, buf.String())
}

// countingCtx is a context whose Err starts returning context.Canceled at its n-th call: the
// library checks ctx only through Err, so this cancels at a chosen check, deterministically.
type countingCtx struct {
	context.Context
	n, calls atomic.Int64
}

func cancelAt(n int) *countingCtx {
	c := &countingCtx{Context: context.Background()}
	c.n.Store(int64(n))
	return c
}

func (c *countingCtx) Err() error {
	if c.calls.Add(1) > c.n.Load() {
		return context.Canceled
	}
	return nil
}

// TestCancelLeavesSessionUsable cancels prefills at seeded random checks (between chunks, and
// between layers of Test mode's selecting prefill), then lets the same session continue. After
// a cancelled call Pos() counts the tokens kept, and the continued session gives the logits,
// lazy layers and ratios of an uncancelled one (within 1e-5, every argmax equal; the spans are
// the same, so the difference is in fact zero).
func TestCancelLeavesSessionUsable(t *testing.T) {
	ctx := context.Background()
	m := randomModel(t, 1024)
	const P, T, V = 300, 420, 64
	toks := randomTokens(T, V, 31)
	modes := []struct {
		name string
		opts []model.SessionOption
	}{
		{"full", []model.SessionOption{model.FullAttention(), model.WithChunkSize(16)}},
		{"fixed", []model.SessionOption{model.FixedMode([]int{0, 2}, model.WithSink(4), model.WithWindow(24)), model.WithChunkSize(16)}},
		{"test", []model.SessionOption{model.TestMode(model.WithSink(4), model.WithWindow(32), model.WithLast(8)), model.WithChunkSize(16)}},
	}
	rng := rand.New(rand.NewPCG(41, 42))
	for _, mode := range modes {
		name, opts := mode.name, mode.opts
		ref, err := m.NewSession(opts...)
		require.NoError(t, err)
		a, err := ref.Forward(ctx, toks[:P])
		require.NoError(t, err)
		b, err := ref.Forward(ctx, toks[P:])
		require.NoError(t, err)
		want := append(append([]float32(nil), a.Data().([]float32)...), b.Data().([]float32)...)

		cancelled := map[int]int{} // by call: 0 the prompt, 1 the continuation
		for trial := range 8 {
			s, err := m.NewSession(opts...)
			require.NoError(t, err)
			var got []float32
			// Two calls, each cancelled at a random check and then completed with the rest.
			for _, span := range [][2]int{{0, P}, {P, T}} {
				lo, hi := span[0], span[1]
				// The call checks ctx once before it starts and then between chunks of 16
				// (between the 4 layers for Test mode's selecting prefill); a point past the
				// last check lets the call complete.
				checks := 1 + (hi-lo-1)/16
				if name == "test" && lo == 0 {
					checks = 1 + 4
				}
				out, err := s.Forward(cancelAt(rng.IntN(checks+2)), toks[lo:hi])
				if err != nil {
					require.ErrorIs(t, err, context.Canceled)
					require.Nil(t, out)
					cancelled[lo/P]++
					kept := s.Pos() - lo
					require.GreaterOrEqual(t, kept, 0)
					require.Less(t, kept, hi-lo)
					if name == "test" && lo == 0 {
						require.Zero(t, s.Pos(), "a cancelled selecting prefill restarts the session")
						require.Nil(t, s.Ratios())
						require.Empty(t, s.Lazy())
					} else {
						require.Zero(t, kept%16, "cancellation lands between chunks")
					}
					// The rows of the kept tokens, from an uncancelled session's logits (the
					// cancelled call returned none).
					got = append(got, want[lo*V:(lo+kept)*V]...)
					out, err = s.Forward(ctx, toks[lo+kept:hi])
					require.NoError(t, err, "%s trial %d: the session must stay usable", name, trial)
				}
				got = append(got, out.Data().([]float32)...)
				require.Equal(t, hi, s.Pos())
			}
			require.InDeltaSlice(t, want, got, 1e-5, "%s trial %d", name, trial)
			for r := range T {
				require.Equal(t, argmax(want[r*V:(r+1)*V]), argmax(got[r*V:(r+1)*V]), "%s trial %d row %d", name, trial, r)
			}
			require.Equal(t, ref.Lazy(), s.Lazy(), name)
			require.Equal(t, ref.Ratios(), s.Ratios(), name)
			require.Equal(t, ref.Usage(), s.Usage(), name)
		}
		// The seeded points include cancellations of both calls (in Test mode: of the
		// selecting prefill and of a chunked call after it).
		require.Positive(t, cancelled[0], name)
		require.Positive(t, cancelled[1], name)
	}
}

// TestCancelSelectingPrefillAsync cancels Test mode's selecting prefill from another goroutine
// at seeded random moments: the call ends with ctx's error and a restarted session (Pos 0), or
// completes; either way the session then selects the same layers as an uncancelled one.
func TestCancelSelectingPrefillAsync(t *testing.T) {
	m := randomModel(t, 4096)
	toks := randomTokens(2000, 64, 51)
	opts := model.TestMode(model.WithSink(4), model.WithWindow(32), model.WithLast(8))
	ref, err := m.NewSession(opts)
	require.NoError(t, err)
	_, err = ref.Next(context.Background(), toks)
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(52, 53))
	for range 5 {
		s, err := m.NewSession(opts)
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(time.Duration(rng.IntN(4000))*time.Microsecond, cancel)
		_, err = s.Next(ctx, toks)
		cancel()
		if err != nil {
			require.ErrorIs(t, err, context.Canceled)
			require.Zero(t, s.Pos())
			require.Zero(t, s.PeakKVBytes())
			_, err = s.Next(context.Background(), toks)
			require.NoError(t, err)
		}
		got, err := s.Next(context.Background(), []int32{7})
		require.NoError(t, err)
		wantNext, err := ref.Clone()
		require.NoError(t, err)
		w, err := wantNext.Next(context.Background(), []int32{7})
		require.NoError(t, err)
		require.InDeltaSlice(t, w, got, 1e-5)
		require.Equal(t, ref.Lazy(), s.Lazy())
		require.Equal(t, ref.Ratios(), s.Ratios())
	}
}

// TestBatchStepCancelled: a cancelled Batch.Step advances no session, and the next Step gives
// what an uncancelled one gives.
func TestBatchStepCancelled(t *testing.T) {
	ctx := context.Background()
	m := randomModel(t, 256)
	mk := func() []*model.Session {
		var ss []*model.Session
		for i, o := range []model.SessionOption{model.FullAttention(), model.TestMode(model.WithSink(2), model.WithWindow(8), model.WithLast(4)), model.FixedMode([]int{1})} {
			s, err := m.NewSession(o)
			require.NoError(t, err)
			_, err = s.Next(ctx, randomTokens(40, 64, uint64(60+i)))
			require.NoError(t, err)
			ss = append(ss, s)
		}
		return ss
	}
	ref, got := mk(), mk()
	toks := []int32{3, 4, 5}
	want, err := m.NewBatch().Step(ctx, ref, toks)
	require.NoError(t, err)
	b := m.NewBatch()
	for k := range 3 {
		_, err := b.Step(cancelAt(k), got, toks)
		require.ErrorIs(t, err, context.Canceled)
		for i, s := range got {
			require.Equal(t, 40, s.Pos(), "session %d advanced in a cancelled step", i)
		}
	}
	out, err := b.Step(ctx, got, toks)
	require.NoError(t, err)
	for i := range out {
		require.InDeltaSlice(t, want[i], out[i], 1e-5)
		require.Equal(t, argmax(want[i]), argmax(out[i]))
	}

	// A fresh Test-mode session's first token through a Batch, cancelled: still fresh.
	s, err := m.NewSession(model.TestMode())
	require.NoError(t, err)
	_, err = b.Step(cancelAt(0), []*model.Session{s}, []int32{1})
	require.ErrorIs(t, err, context.Canceled)
	require.Zero(t, s.Pos())
	_, err = b.Step(ctx, []*model.Session{s}, []int32{1})
	require.NoError(t, err)
	require.Equal(t, 1, s.Pos())
}
