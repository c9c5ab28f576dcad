package model_test

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lighttransfer/lighttransfer-go/kvcache"
	"github.com/lighttransfer/lighttransfer-go/loader"
	"github.com/lighttransfer/lighttransfer-go/model"
)

// smallConfig is a Llama-shaped configuration small enough for long-context tests.
func smallConfig(layers, maxPos int) loader.Config {
	return loader.Config{ModelType: "llama", HiddenSize: 32, IntermediateSize: 64, NumLayers: layers,
		NumHeads: 2, NumKVHeads: 1, HeadDim: 16, VocabSize: 64, MaxPositions: maxPos,
		RMSNormEps: 1e-5, RopeTheta: 10000, HiddenAct: "silu", TieEmbeddings: true}
}

func randomTokens(n, vocab int, seed uint64) []int32 {
	r := rand.New(rand.NewPCG(seed, 1))
	t := make([]int32, n)
	for i := range t {
		t[i] = int32(r.IntN(vocab))
	}
	return t
}

// TestTestModeMemory prefills 4096 tokens in Test mode (8 layers, keep 0.5, sink 4, window
// 1020) and checks the KV accounting of docs/method.md §3 against the cache's own Usage:
//   - after prefill the cache holds what the estimator predicts for 4 full and 4 streaming
//     layers, (K·n + (L−K)·(sink+window−1))/(L·n) ≈ 0.62 of a full-attention session's bytes
//     (streaming layers allocate sink+window slots, one more than they hold);
//   - the peak during the prefill stays within (K+1)·n + (L−K−1)·(sink+window) token-layers
//     plus one allocation block per layer;
//   - lazy layers hold sink+window−1 tokens after prefill and never more than sink+window
//     while decoding.
func TestTestModeMemory(t *testing.T) {
	const L, n, sink, window, K = 8, 4096, 4, 1020, 4
	cfg := smallConfig(L, n+64)
	m, err := model.Random(context.Background(), cfg, 1)
	require.NoError(t, err)
	ctx := context.Background()
	toks := randomTokens(n, cfg.VocabSize, 2)

	full, err := m.NewSession(model.FullAttention())
	require.NoError(t, err)
	_, err = full.Next(ctx, toks)
	require.NoError(t, err)

	s, err := m.NewSession(model.TestMode(model.WithKeep(0.5), model.WithSink(sink), model.WithWindow(window)))
	require.NoError(t, err)
	_, err = s.Next(ctx, toks)
	require.NoError(t, err)
	lazy := s.Lazy()
	require.Len(t, lazy, L-K)
	require.Len(t, s.Ratios(), L)

	shape := kvcache.Shape{KVHeads: cfg.NumKVHeads, HeadDim: cfg.HeadDim}
	policies := make([]kvcache.Policy, L)
	for _, l := range lazy {
		policies[l] = kvcache.Streaming(sink, window)
	}
	u := s.Usage()
	require.Equal(t, kvcache.Estimate(shape, policies, n), u.Bytes)
	ratio := float64(u.Bytes) / float64(full.Usage().Bytes)
	want := float64(K*n+(L-K)*(sink+window-1)) / float64(L*n)
	t.Logf("hybrid/full KV bytes %d/%d = %.4f (token-layer formula %.4f)", u.Bytes, full.Usage().Bytes, ratio, want)
	require.InDelta(t, want, ratio, 0.002)

	slot := kvcache.SlotBytes(shape)
	peakBound := (int64((K+1)*n+(L-K-1)*(sink+window)) + int64(L*kvcache.DefaultBlockTokens)) * slot
	require.LessOrEqual(t, s.PeakKVBytes(), peakBound)
	require.Less(t, s.PeakKVBytes(), full.Usage().Bytes)

	for _, l := range lazy {
		require.Equal(t, sink+window-1, u.Layers[l].Tokens, "layer %d after prefill", l)
	}
	for i := 0; i < 40; i++ {
		_, err := s.Next(ctx, toks[i:i+1])
		require.NoError(t, err)
		for _, l := range lazy {
			require.LessOrEqual(t, s.Usage().Layers[l].Tokens, sink+window)
		}
	}
	require.Equal(t, lazy, s.Lazy(), "later forwards must not re-select")
}

// TestTestModeShortPrompt: a first forward of at most sink+window tokens, or shorter than
// w_last, makes no layer lazy, and later forwards never select.
func TestTestModeShortPrompt(t *testing.T) {
	cfg := smallConfig(4, 512)
	m, err := model.Random(context.Background(), cfg, 3)
	require.NoError(t, err)
	ctx := context.Background()
	for _, tc := range []struct {
		n, sink, window, last int
	}{
		{n: 36, sink: 4, window: 32, last: 8},    // n = sink + window
		{n: 100, sink: 4, window: 32, last: 200}, // n < w_last
	} {
		s, err := m.NewSession(model.TestMode(model.WithSink(tc.sink), model.WithWindow(tc.window), model.WithLast(tc.last)))
		require.NoError(t, err)
		_, err = s.Next(ctx, randomTokens(tc.n, cfg.VocabSize, 4))
		require.NoError(t, err)
		require.Empty(t, s.Lazy())
		_, err = s.Next(ctx, randomTokens(300, cfg.VocabSize, 5))
		require.NoError(t, err)
		require.Empty(t, s.Lazy())
	}
}

// TestModeOptionErrors covers invalid hybrid settings.
func TestModeOptionErrors(t *testing.T) {
	cfg := smallConfig(4, 512)
	m, err := model.Random(context.Background(), cfg, 3)
	require.NoError(t, err)
	for name, opt := range map[string]model.SessionOption{
		"negative sink":    model.TestMode(model.WithSink(-1)),
		"zero window":      model.TestMode(model.WithWindow(0)),
		"keep zero":        model.TestMode(model.WithKeep(0)),
		"keep above one":   model.TestMode(model.WithKeep(1.5)),
		"layer too large":  model.FixedMode([]int{4}),
		"negative layer":   model.FixedMode([]int{-1}),
		"repeated layer":   model.FixedMode([]int{1, 1}),
		"zero last":        model.TestMode(model.WithLast(0)),
		"fixed bad window": model.FixedMode([]int{1}, model.WithWindow(-5)),
	} {
		_, err := m.NewSession(opt)
		require.ErrorIs(t, err, model.ErrOption, name)
	}
}

// TestFixedModeChunksEqualOneForward: in fixed mode the streaming mask applies to every
// query, so prefilling in chunks smaller than the window must equal one big forward.
func TestFixedModeChunksEqualOneForward(t *testing.T) {
	cfg := smallConfig(4, 512)
	m, err := model.Random(context.Background(), cfg, 7)
	require.NoError(t, err)
	ctx := context.Background()
	toks := randomTokens(300, cfg.VocabSize, 8)
	opts := model.FixedMode([]int{1, 2}, model.WithSink(3), model.WithWindow(20))
	a, err := m.NewSession(opts)
	require.NoError(t, err)
	want, err := a.Forward(ctx, toks)
	require.NoError(t, err)
	b, err := m.NewSession(opts, model.WithChunkSize(7))
	require.NoError(t, err)
	got, err := b.Forward(ctx, toks)
	require.NoError(t, err)
	require.InDeltaSlice(t, want.Data(), got.Data(), 1e-5)
	require.Equal(t, int64(2*(3+20)+2*512)*kvcache.SlotBytes(kvcache.Shape{KVHeads: 1, HeadDim: 16}), b.Usage().Bytes)
}
