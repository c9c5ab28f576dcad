package model_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lighttransfer/lighttransfer-go/attention"
	"github.com/lighttransfer/lighttransfer-go/internal/refcheck"
	"github.com/lighttransfer/lighttransfer-go/kvcache"
	"github.com/lighttransfer/lighttransfer-go/model"
)

// kvcache's layers are what attention reads, stored types included.
var _ attention.QKV = kvcache.Layer(nil)

var reducedTypes = []kvcache.Type{kvcache.BF16, kvcache.Q8, kvcache.Q4}

// TestKVTypeLazyLayers: Test mode measures lazy ratios on the prompt's full-precision keys, so
// with every reduced KV type it picks exactly the reference's lazy layers, its prefill logits
// are bit-identical to F32's, and every layer (the converted ones included) keeps the type.
func TestKVTypeLazyLayers(t *testing.T) {
	ctx := context.Background()
	n := 0
	for _, dir := range referenceDirs(t) {
		ref, err := refcheck.ReadReference(dir)
		require.NoError(t, err)
		if ref.TestMode == nil || ref.TestMode.LazyLayers == nil {
			continue
		}
		n++
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m := loadModel(t, dir)
			opts := []model.StreamOption{model.WithSink(ref.Sink), model.WithWindow(ref.Window), model.WithLast(ref.WLast), model.WithKeep(0.5)}
			f32, err := m.NewSession(model.TestMode(opts...))
			require.NoError(t, err)
			want, err := f32.Next(ctx, ref.Tokens[:ref.P])
			require.NoError(t, err)
			want = append([]float32(nil), want...) // Next's slice is the session's buffer
			require.Equal(t, ref.TestMode.LazyLayers, f32.Lazy())
			for _, typ := range reducedTypes {
				s, err := m.NewSession(model.TestMode(opts...), model.WithKV(typ))
				require.NoError(t, err)
				got, err := s.Next(ctx, ref.Tokens[:ref.P])
				require.NoError(t, err)
				require.Equal(t, ref.TestMode.LazyLayers, s.Lazy(), "%v", typ)
				require.Equal(t, f32.Ratios(), s.Ratios(), "%v", typ)
				requireBits(t, want, got, typ.String())
				for li, lu := range s.Usage().Layers {
					require.Equal(t, typ, lu.Type, "%v layer %d", typ, li)
				}
				// Decoding reads the reduced cache and mostly predicts the same tokens (the tiny
				// random models have near-ties, so a few argmax flips are expected; a misread
				// cache agrees on almost none).
				agree, rows := 0, 0
				for i := ref.P; i < len(ref.Tokens); i++ {
					a, err := f32.Next(ctx, ref.Tokens[i:i+1])
					require.NoError(t, err)
					am := argmax(a)
					b, err := s.Next(ctx, ref.Tokens[i:i+1])
					require.NoError(t, err)
					if argmax(b) == am {
						agree++
					}
					rows++
				}
				t.Logf("%v: argmax agrees with f32 on %d of %d decode rows", typ, agree, rows)
				require.GreaterOrEqual(t, float64(agree), 0.85*float64(rows), "%v", typ)
				f32, err = m.NewSession(model.TestMode(opts...))
				require.NoError(t, err)
				_, err = f32.Next(ctx, ref.Tokens[:ref.P])
				require.NoError(t, err)
			}
		})
	}
	if n == 0 {
		t.Skip("no reference with test_mode.lazy_layers")
	}
}

func requireBits(t *testing.T, want, got []float32, what string) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		if want[i] != got[i] {
			t.Fatalf("%s: element %d = %v, want %v", what, i, got[i], want[i])
		}
	}
}

// TestKVTypeAccounting: fixed mode with Q8 full layers and BF16 streaming layers holds exactly
// the bytes kvcache.Estimate predicts for those types, and a clone keeps them.
func TestKVTypeAccounting(t *testing.T) {
	ctx := context.Background()
	cfg := smallConfig(4, 2048)
	m, err := model.Random(ctx, cfg, 3)
	require.NoError(t, err)
	const sink, window, n = 4, 60, 700
	s, err := m.NewSession(model.FixedMode([]int{1, 3}, model.WithSink(sink), model.WithWindow(window)),
		model.WithKVTypes(kvcache.Q8, kvcache.BF16))
	require.NoError(t, err)
	toks := randomTokens(n, cfg.VocabSize, 4)
	_, err = s.Next(ctx, toks)
	require.NoError(t, err)
	shape := kvcache.Shape{KVHeads: cfg.NumKVHeads, HeadDim: cfg.HeadDim}
	pol := []kvcache.Policy{kvcache.Full(), kvcache.Streaming(sink, window), kvcache.Full(), kvcache.Streaming(sink, window)}
	u := s.Usage()
	require.Equal(t, kvcache.Estimate(shape, pol, n, kvcache.WithType(kvcache.Q8, kvcache.BF16)), u.Bytes)
	require.Equal(t, []kvcache.Type{kvcache.Q8, kvcache.BF16, kvcache.Q8, kvcache.BF16},
		[]kvcache.Type{u.Layers[0].Type, u.Layers[1].Type, u.Layers[2].Type, u.Layers[3].Type})
	c, err := s.Clone()
	require.NoError(t, err)
	require.Equal(t, u, c.Usage())
	// The reduced cache changes the logits only a little (random weights, logits of size ~1).
	f, err := m.NewSession(model.FixedMode([]int{1, 3}, model.WithSink(sink), model.WithWindow(window)))
	require.NoError(t, err)
	_, err = f.Next(ctx, toks)
	require.NoError(t, err)
	a, err := f.Next(ctx, toks[:1])
	require.NoError(t, err)
	b, err := s.Next(ctx, toks[:1])
	require.NoError(t, err)
	require.Less(t, maxAbsDiff(a, b), 0.05)
	require.NotZero(t, maxAbsDiff(a, b), "the reduced cache is read")
}

// TestKVTypeErrors: an unknown KV type fails NewSession with ErrOption and kvcache.ErrType,
// naming the layer and the type.
func TestKVTypeErrors(t *testing.T) {
	m, err := model.Random(context.Background(), smallConfig(2, 64), 1)
	require.NoError(t, err)
	_, err = m.NewSession(model.WithKV(kvcache.Type(9)))
	require.True(t, errors.Is(err, model.ErrOption), "%v", err)
	require.True(t, errors.Is(err, kvcache.ErrType), "%v", err)
	require.Contains(t, err.Error(), "layer 0: element type Type(9)")
	_, err = m.NewSession(model.FixedMode([]int{1}), model.WithKVTypes(kvcache.F32, kvcache.Type(5)))
	require.ErrorIs(t, err, kvcache.ErrType)
	require.Contains(t, err.Error(), "layer 1: element type Type(5)")
}

// TestCloneKV: a float32 session re-encoded as Q8 holds Q8's bytes, decodes as a session
// that was Q8 all along would after an f32 prefill, and a Q8 session cannot change type.
func TestCloneKV(t *testing.T) {
	ctx := context.Background()
	cfg := smallConfig(4, 1024)
	m, err := model.Random(ctx, cfg, 5)
	require.NoError(t, err)
	toks := randomTokens(300, cfg.VocabSize, 6)
	base, err := m.NewSession(model.FixedMode([]int{2}, model.WithSink(2), model.WithWindow(40)))
	require.NoError(t, err)
	_, err = base.Next(ctx, toks)
	require.NoError(t, err)
	q, err := base.CloneKV(kvcache.Q8, kvcache.BF16)
	require.NoError(t, err)
	shape := kvcache.Shape{KVHeads: cfg.NumKVHeads, HeadDim: cfg.HeadDim}
	pol := []kvcache.Policy{{}, {}, kvcache.Streaming(2, 40), {}}
	require.Equal(t, kvcache.Estimate(shape, pol, 300, kvcache.WithType(kvcache.Q8, kvcache.BF16)), q.Usage().Bytes)
	require.Equal(t, q.Usage().Bytes, q.PeakKVBytes())
	require.Equal(t, kvcache.BF16, q.Usage().Layers[2].Type)
	a, err := base.Next(ctx, toks[:1])
	require.NoError(t, err)
	a = append([]float32(nil), a...)
	b, err := q.Next(ctx, toks[:1])
	require.NoError(t, err)
	require.Less(t, maxAbsDiff(a, b), 0.05)
	require.NotZero(t, maxAbsDiff(a, b))
	// Clone keeps the types.
	c, err := q.Clone()
	require.NoError(t, err)
	require.Equal(t, q.Usage(), c.Usage())
	_, err = q.CloneKV(kvcache.F32, kvcache.F32)
	require.ErrorIs(t, err, model.ErrOption)
	require.ErrorIs(t, err, kvcache.ErrType)
	require.Contains(t, err.Error(), "layer 0: clone as f32: the layer holds type q8")
}
