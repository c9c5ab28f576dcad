package model

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lighttransfer/lighttransfer-go/attention"
	"github.com/lighttransfer/lighttransfer-go/kvcache"
	"github.com/lighttransfer/lighttransfer-go/layerselect"
	"github.com/lighttransfer/lighttransfer-go/loader"
)

// countingBackend wraps another backend and counts the calls of each kind, to check that the
// forward reaches its compute only through the backend seam.
type countingBackend struct {
	backend
	matMuls, attends, ratios, caches int
}

func (c *countingBackend) matMul(dst, x []float32, n int, w *matrix) {
	c.matMuls++
	c.backend.matMul(dst, x, n, w)
}

func (c *countingBackend) matMul3(x []float32, n int, d0 []float32, w0 *matrix, d1 []float32, w1 *matrix, d2 []float32, w2 *matrix) {
	c.matMuls++
	c.backend.matMul3(x, n, d0, w0, d1, w1, d2, w2)
}

func (c *countingBackend) attend(out, q []float32, pos []int32, kv attention.KV, mask kvcache.Policy, lse []float32) {
	c.attends++
	c.backend.attend(out, q, pos, kv, mask, lse)
}

func (c *countingBackend) lazyRatio(q, k, lse []float32, n int, w layerselect.Window) float64 {
	c.ratios++
	return c.backend.lazyRatio(q, k, lse, n, w)
}

func (c *countingBackend) lazyRatioOf(p layerselect.Prompt, n int, w layerselect.Window) float64 {
	c.ratios++
	return c.backend.lazyRatioOf(p, n, w)
}

func (c *countingBackend) newCache(policies []kvcache.Policy, full, streaming kvcache.Type) (*kvcache.Cache, error) {
	c.caches++
	return c.backend.newCache(policies, full, streaming)
}

// TestForwardRunsOnTheBackend: a model whose backend is wrapped computes the same logits as
// one on the plain CPU backend, and every product, attention, lazy ratio and cache comes from
// the backend (per layer: q/k/v, o, gate/up and down; then the LM head).
func TestForwardRunsOnTheBackend(t *testing.T) {
	ctx := context.Background()
	cfg := loader.Config{ModelType: "qwen2", HiddenSize: 32, IntermediateSize: 64, NumLayers: 3,
		NumHeads: 4, NumKVHeads: 2, HeadDim: 8, VocabSize: 50, MaxPositions: 256, RMSNormEps: 1e-6,
		RopeTheta: 10000, HiddenAct: "silu", TieEmbeddings: true, AttentionBias: true}
	plain, err := Random(ctx, cfg, 7)
	require.NoError(t, err)
	defer plain.Close()
	wrapped, err := Random(ctx, cfg, 7)
	require.NoError(t, err)
	defer wrapped.Close()
	cb := &countingBackend{backend: wrapped.be}
	wrapped.be = cb

	prompt := make([]int32, 40)
	for i := range prompt {
		prompt[i] = int32(i * 7 % cfg.VocabSize)
	}
	opts := []SessionOption{TestMode(WithSink(2), WithWindow(8), WithLast(4))}
	a, err := plain.NewSession(opts...)
	require.NoError(t, err)
	b, err := wrapped.NewSession(opts...)
	require.NoError(t, err)
	require.Equal(t, 1, cb.caches)
	for step, toks := range [][]int32{prompt, {3}, {4}} {
		la, err := a.Next(ctx, toks)
		require.NoError(t, err)
		lb, err := b.Next(ctx, toks)
		require.NoError(t, err)
		require.Equal(t, la, lb, "step %d: same logits through the wrapped backend", step)
	}
	L := cfg.NumLayers
	require.Equal(t, 3*(4*L+1), cb.matMuls, "4 products per layer and the LM head, per step")
	require.Equal(t, 3*L, cb.attends)
	require.Equal(t, L, cb.ratios, "lazy ratios in the selecting prefill only")
	require.Equal(t, a.Lazy(), b.Lazy())
	require.NotEmpty(t, b.Lazy())
}
