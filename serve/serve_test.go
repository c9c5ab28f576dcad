package serve

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lighttransfer/lighttransfer-go/internal/testutil"
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
