package model_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lighttransfer/lighttransfer-go/kvcache"
	"github.com/lighttransfer/lighttransfer-go/loader"
	"github.com/lighttransfer/lighttransfer-go/model"
)

// rowInvariantKernels: whether the kernels are row-invariant (see requireSameBits).
const rowInvariantKernels = false

// runConfig is a small model whose widths are not multiples of the kernels' vector widths
// (88 = 5·16+8 hidden, 200 intermediate), so every product has tail columns.
func runConfig(layers int) loader.Config {
	return loader.Config{ModelType: "qwen2", HiddenSize: 88, IntermediateSize: 200, NumLayers: layers,
		NumHeads: 4, NumKVHeads: 2, HeadDim: 22, VocabSize: 97, MaxPositions: 512,
		RMSNormEps: 1e-6, RopeTheta: 1e4, TieEmbeddings: true, AttentionBias: true, HiddenAct: "silu"}
}

// runSpec is one sequence of a Batch.Run test: session options, prompt length, tokens to
// decode and the step it arrives at.
type runSpec struct {
	opts   []model.SessionOption
	prompt int
	decode int
	arrive int
}

// runSpecs mixes modes (full, Test, fixed), KV types, chunk sizes and lengths. The Test-mode
// prompts are longer than sink+window and w_last, so they select lazy layers.
func runSpecs() []runSpec {
	test := model.TestMode(model.WithSink(2), model.WithWindow(16), model.WithLast(8))
	return []runSpec{
		{opts: []model.SessionOption{model.FullAttention(), model.WithChunkSize(16)}, prompt: 37, decode: 9, arrive: 0},
		{opts: []model.SessionOption{test}, prompt: 50, decode: 12, arrive: 0},
		{opts: []model.SessionOption{model.FixedMode([]int{0, 2}, model.WithSink(1), model.WithWindow(9)), model.WithKV(kvcache.BF16), model.WithChunkSize(8)}, prompt: 23, decode: 14, arrive: 1},
		{opts: []model.SessionOption{model.FullAttention(), model.WithKV(kvcache.Q8)}, prompt: 5, decode: 20, arrive: 2},
		{opts: []model.SessionOption{test, model.WithKV(kvcache.Q8)}, prompt: 41, decode: 6, arrive: 3},
		{opts: []model.SessionOption{model.FullAttention(), model.WithChunkSize(5)}, prompt: 1, decode: 7, arrive: 4},
		{opts: []model.SessionOption{model.FixedMode([]int{1}, model.WithSink(0), model.WithWindow(6)), model.WithKVTypes(kvcache.F32, kvcache.Q4)}, prompt: 70, decode: 5, arrive: 2},
	}
}

// runTrace is what one sequence saw in the batch: the tokens of each of its Run calls and
// the logits each returned.
type runTrace struct {
	calls  [][]int32
	logits [][]float32
}

// runBatch drives the specs through one Batch: each sequence arrives at its step, feeds its
// prompt in spans of its chunk size (a Test-mode selecting prefill in one span), then decodes
// greedily, all live sequences in one Run per step; rng shuffles their order in every step.
func runBatch(t *testing.T, m *model.Model, specs []runSpec, seed uint64) ([]runTrace, []*model.Session) {
	ctx := context.Background()
	V := m.Config().VocabSize
	rng := rand.New(rand.NewPCG(seed, 7))
	type seq struct {
		i      int
		s      *model.Session
		prompt []int32
		fed    int
		next   int32
		left   int
	}
	traces := make([]runTrace, len(specs))
	sessions := make([]*model.Session, len(specs))
	var live []*seq
	b := m.NewBatch()
	for step := 0; ; step++ {
		for i, sp := range specs {
			if sp.arrive == step {
				s, err := m.NewSession(sp.opts...)
				require.NoError(t, err)
				sessions[i] = s
				live = append(live, &seq{i: i, s: s, prompt: randomTokens(sp.prompt, V, seed+uint64(i)), left: sp.decode})
			}
		}
		if len(live) == 0 {
			if step > 10 {
				break
			}
			continue
		}
		rng.Shuffle(len(live), func(a, b int) { live[a], live[b] = live[b], live[a] })
		var ss []*model.Session
		var toks [][]int32
		for _, q := range live {
			var tk []int32
			if q.fed < len(q.prompt) {
				n := q.s.ChunkSize()
				if q.s.Mode() == model.ModeTest && q.fed == 0 {
					n = len(q.prompt)
				}
				tk = q.prompt[q.fed:min(q.fed+n, len(q.prompt))]
				q.fed += len(tk)
			} else {
				tk = []int32{q.next}
				q.left--
			}
			ss = append(ss, q.s)
			toks = append(toks, tk)
		}
		out, err := b.Run(ctx, ss, toks)
		require.NoError(t, err)
		next := live[:0]
		for j, q := range live {
			tr := &traces[q.i]
			tr.calls = append(tr.calls, toks[j])
			tr.logits = append(tr.logits, slices.Clone(out[j]))
			q.next = argmax(out[j])
			if q.fed < len(q.prompt) || q.left > 0 {
				next = append(next, q)
			}
		}
		live = next
	}
	return traces, sessions
}

// TestBatchRunEqualsLone: Batch.Run over sequences of mixed modes, KV types, chunk sizes,
// lengths and arrival steps, in shuffled order, gives every sequence the same logits bit for
// bit as the sequence alone through Session.Next (its prompt in one call, then one token per
// call), and leaves the same position, lazy layers, ratios and cache usage. Run twice with
// different orders, for f32 and bf16 weights, one and two threads.
func TestBatchRunEqualsLone(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		format  model.WeightFormat
		threads int
	}{{model.WeightsF32, 1}, {model.WeightsF32, 2}, {model.WeightsBF16, 2}} {
		t.Run(fmt.Sprintf("%v/threads=%d", c.format, c.threads), func(t *testing.T) {
			m, err := model.Random(ctx, runConfig(3), 21, model.WithWeightFormat(c.format), model.WithThreads(c.threads))
			require.NoError(t, err)
			defer m.Close()
			specs := runSpecs()
			for _, seed := range []uint64{1, 2} {
				traces, batched := runBatch(t, m, specs, seed)
				for i, sp := range specs {
					s, err := m.NewSession(sp.opts...)
					require.NoError(t, err)
					tr := traces[i]
					// The prompt's calls are replayed as one Next call; its logits are the last call's.
					var prompt []int32
					k := 0
					for ; k < len(tr.calls) && len(prompt) < sp.prompt; k++ {
						prompt = append(prompt, tr.calls[k]...)
					}
					got, err := s.Next(ctx, prompt)
					require.NoError(t, err)
					requireSameBits(t, tr.logits[k-1], got, "seed %d sequence %d prefill", seed, i)
					for ; k < len(tr.calls); k++ {
						got, err := s.Next(ctx, tr.calls[k])
						require.NoError(t, err)
						requireSameBits(t, tr.logits[k], got, "seed %d sequence %d call %d", seed, i, k)
					}
					require.Equal(t, s.Pos(), batched[i].Pos())
					require.Equal(t, s.Lazy(), batched[i].Lazy())
					if rowInvariantKernels {
						require.Equal(t, s.Ratios(), batched[i].Ratios())
					} else {
						require.InDeltaSlice(t, s.Ratios(), batched[i].Ratios(), 1e-6)
					}
					require.Equal(t, s.Usage(), batched[i].Usage())
					require.Equal(t, s.PeakKVBytes(), batched[i].PeakKVBytes())
					s.Close()
					batched[i].Close()
				}
				require.NotEmpty(t, traces[1].calls)
			}
		})
	}
}

// requireSameBits fails unless want and got hold the same float32 bit patterns. Until the
// dense kernels give a row the same bits whatever the rows around it, a batched row may differ
// from a lone one by the summation order: 1e-4 absolute on logits of order 1–10.
func requireSameBits(t *testing.T, want, got []float32, msg string, args ...any) {
	t.Helper()
	require.Len(t, got, len(want))
	if !rowInvariantKernels {
		require.InDeltaSlice(t, want, got, 1e-4, fmt.Sprintf(msg, args...))
		return
	}
	for i := range want {
		if want[i] != got[i] && !(want[i] != want[i] && got[i] != got[i]) {
			require.Failf(t, "logits differ", "%s: index %d: want %v, got %v", fmt.Sprintf(msg, args...), i, want[i], got[i])
		}
	}
}

// TestRunGreedyEqualsGenerate: on stories260K, a manual greedy loop over Batch.Run (the
// prompt in ChunkSize pieces next to other sequences' steps) produces the tokens of Generate.
func TestRunGreedyEqualsGenerate(t *testing.T) {
	m := stories(t)
	ctx := context.Background()
	const n = 40
	prompts := [][]int32{randomTokens(30, m.Config().VocabSize, 3), randomTokens(3, m.Config().VocabSize, 4), randomTokens(17, m.Config().VocabSize, 5)}
	opts := []model.SessionOption{model.FullAttention(), model.WithChunkSize(8)}
	b := m.NewBatch()
	sessions := make([]*model.Session, len(prompts))
	got := make([][]int32, len(prompts))
	fed := make([]int, len(prompts))
	last := make([]int32, len(prompts))
	for i := range prompts {
		s, err := m.NewSession(opts...)
		require.NoError(t, err)
		defer s.Close()
		sessions[i] = s
	}
	for {
		var ss []*model.Session
		var toks [][]int32
		var idx []int
		for i, s := range sessions {
			switch {
			case fed[i] < len(prompts[i]):
				hi := min(fed[i]+s.ChunkSize(), len(prompts[i]))
				toks = append(toks, prompts[i][fed[i]:hi])
				fed[i] = hi
			case len(got[i]) < n:
				toks = append(toks, []int32{last[i]})
			default:
				continue
			}
			ss, idx = append(ss, s), append(idx, i)
		}
		if len(ss) == 0 {
			break
		}
		out, err := b.Run(ctx, ss, toks)
		require.NoError(t, err)
		for j, i := range idx {
			if fed[i] == len(prompts[i]) {
				last[i] = argmax(out[j])
				got[i] = append(got[i], last[i])
			}
		}
	}
	for i, p := range prompts {
		want, err := m.GenerateTokens(ctx, p, model.WithMaxTokens(n), model.WithIgnoreEOS(), model.WithSessionOptions(opts...))
		require.NoError(t, err)
		require.Equal(t, want.Tokens, got[i][:len(want.Tokens)], "prompt %d", i)
	}
}

// TestEstimateKV: EstimateKV equals the bytes a session holds after that many tokens, in
// full and fixed mode for every KV type, and in Test mode (a prompt too short to select on
// keeps every layer full, the full-attention worst case) at several lengths.
func TestEstimateKV(t *testing.T) {
	ctx := context.Background()
	m, err := model.Random(ctx, runConfig(3), 4)
	require.NoError(t, err)
	defer m.Close()
	for _, c := range []struct {
		name string
		opts []model.SessionOption
	}{
		{"full", []model.SessionOption{model.FullAttention()}},
		{"full/bf16", []model.SessionOption{model.FullAttention(), model.WithKV(kvcache.BF16)}},
		{"full/q8", []model.SessionOption{model.WithKV(kvcache.Q8)}},
		{"full/q4", []model.SessionOption{model.WithKV(kvcache.Q4)}},
		{"fixed/q4-streaming", []model.SessionOption{model.FixedMode([]int{0, 2}, model.WithSink(3), model.WithWindow(40)), model.WithKVTypes(kvcache.Q8, kvcache.Q4)}},
		{"fixed", []model.SessionOption{model.FixedMode([]int{1}, model.WithSink(2), model.WithWindow(20))}},
		{"test", []model.SessionOption{model.TestMode(model.WithSink(4), model.WithWindow(500))}},
	} {
		for _, n := range []int{1, 31, 64, 200, 300} {
			s, err := m.NewSession(c.opts...)
			require.NoError(t, err)
			_, err = s.Next(ctx, randomTokens(n, m.Config().VocabSize, uint64(n)))
			require.NoError(t, err)
			want, err := m.EstimateKV(n, c.opts...)
			require.NoError(t, err)
			require.Equal(t, s.Usage().Bytes, want, "%s at %d tokens", c.name, n)
			require.Equal(t, s.PeakKVBytes(), want, "%s at %d tokens", c.name, n)
			s.Close()
		}
	}
	_, err = m.EstimateKV(-1)
	require.ErrorIs(t, err, model.ErrOption)
	_, err = m.EstimateKV(10, model.WithKV(kvcache.Type(9)))
	require.ErrorIs(t, err, model.ErrOption)
	require.ErrorIs(t, err, kvcache.ErrType)
	_, err = m.EstimateKV(10, model.FullAttention(), model.TestMode())
	require.ErrorIs(t, err, model.ErrOption)
}

// TestBatchRunErrors: misuse of Run is an error naming the session's index, and no session
// advances.
func TestBatchRunErrors(t *testing.T) {
	ctx := context.Background()
	m, err := model.Random(ctx, runConfig(2), 4)
	require.NoError(t, err)
	defer m.Close()
	mk := func(opts ...model.SessionOption) *model.Session {
		s, err := m.NewSession(opts...)
		require.NoError(t, err)
		return s
	}
	a, c := mk(model.WithChunkSize(4)), mk()
	other, err := model.Random(ctx, runConfig(2), 5)
	require.NoError(t, err)
	defer other.Close()
	foreign, err := other.NewSession()
	require.NoError(t, err)
	b := m.NewBatch()
	for _, tc := range []struct {
		name     string
		sessions []*model.Session
		tokens   [][]int32
		is       error
		says     string
	}{
		{"lengths", []*model.Session{a, c}, [][]int32{{1}}, model.ErrOption, "2 sessions but 1"},
		{"nil", []*model.Session{a, nil}, [][]int32{{1}, {2}}, model.ErrOption, "session 1 is nil"},
		{"twice", []*model.Session{a, c, a}, [][]int32{{1}, {2}, {3}}, model.ErrOption, "session 2 appears twice"},
		{"empty", []*model.Session{a, c}, [][]int32{{1}, {}}, model.ErrOption, "session 1 has no tokens"},
		{"span", []*model.Session{c, a}, [][]int32{{1}, {1, 2, 3, 4, 5}}, model.ErrOption, "session 1: 5 tokens exceed one span of 4"},
		{"token", []*model.Session{a, c}, [][]int32{{1}, {2, 97}}, model.ErrToken, "batch session 1"},
		{"context", []*model.Session{c}, [][]int32{make([]int32, 513)}, model.ErrContext, "batch session 0"},
		{"foreign", []*model.Session{a, foreign}, [][]int32{{1}, {2}}, model.ErrOption, "session 1 belongs to another model"},
	} {
		_, err := b.Run(ctx, tc.sessions, tc.tokens)
		require.ErrorIs(t, err, tc.is, tc.name)
		require.ErrorContains(t, err, tc.says, tc.name)
	}
	require.Zero(t, a.Pos())
	require.Zero(t, c.Pos())
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = b.Run(cctx, []*model.Session{a}, [][]int32{{1}})
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorContains(t, err, "session 0")
	m.Close()
	_, err = b.Run(ctx, []*model.Session{a}, [][]int32{{1}})
	require.ErrorIs(t, err, model.ErrClosed)
}

// TestBatchRunZeroAllocs: once its buffers have grown, a Run step of decode tokens and
// prefill chunks allocates nothing.
func TestBatchRunZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's sync.Pool drops items, so it allocates")
	}
	ctx := context.Background()
	m, err := model.Random(ctx, runConfig(2), 4, model.WithThreads(2))
	require.NoError(t, err)
	defer m.Close()
	var ss []*model.Session
	for range 3 {
		s, err := m.NewSession(model.FullAttention(), model.WithChunkSize(4))
		require.NoError(t, err)
		defer s.Close()
		ss = append(ss, s)
	}
	chunk := []int32{1, 2, 3, 4}
	toks := [][]int32{{5}, chunk, {6}}
	b := m.NewBatch()
	_, err = b.Run(ctx, ss, toks)
	require.NoError(t, err)
	allocs := testing.AllocsPerRun(20, func() {
		if _, err := b.Run(ctx, ss, toks); err != nil {
			t.Fatal(err)
		}
	})
	require.Zero(t, allocs, "allocations per Run step")
}
