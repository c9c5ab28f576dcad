package model_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lighttransfer/lighttransfer-go/kvcache"
	"github.com/lighttransfer/lighttransfer-go/loader"
	"github.com/lighttransfer/lighttransfer-go/model"
)

// TestNextZeroAllocs: once warm, a decode step (Session.Next of one token) allocates
// nothing, for f32, bf16, q8 and q4 weights, one or two threads and f32, bf16 or q8 KV caches. The shape is large enough that
// the kernels split their work over the pool (threads=2) and the fused q/k/v and gate/up
// products run; the 60 steps stay inside the cache's first block so no KV block is added.
func TestNextZeroAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a mid-size random model")
	}
	if raceEnabled {
		t.Skip("the race detector's sync.Pool drops items, so it allocates")
	}
	cfg := loader.Config{ModelType: "qwen2", HiddenSize: 256, IntermediateSize: 1024, NumLayers: 2,
		NumHeads: 4, NumKVHeads: 2, HeadDim: 64, VocabSize: 4096, MaxPositions: 1024,
		RMSNormEps: 1e-6, RopeTheta: 1e6, TieEmbeddings: true, AttentionBias: true, HiddenAct: "silu"}
	for _, c := range []struct {
		name    string
		format  model.WeightFormat
		threads int
		kv      kvcache.Type
	}{
		{"f32/threads=1", model.WeightsF32, 1, kvcache.F32},
		{"f32/threads=2", model.WeightsF32, 2, kvcache.F32},
		{"bf16/threads=2", model.WeightsBF16, 2, kvcache.F32},
		{"bf16/threads=2/kv=q8", model.WeightsBF16, 2, kvcache.Q8},
		{"f32/threads=1/kv=bf16", model.WeightsF32, 1, kvcache.BF16},
		{"q8/threads=2", model.WeightsQ8, 2, kvcache.F32},
		{"q4/threads=1", model.WeightsQ4, 1, kvcache.F32},
		{"q4/threads=2", model.WeightsQ4, 2, kvcache.F32},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			m, err := model.Random(ctx, cfg, 5, model.WithWeightFormat(c.format), model.WithThreads(c.threads))
			require.NoError(t, err)
			defer m.Close()
			s, err := m.NewSession(model.FullAttention(), model.WithKV(c.kv))
			require.NoError(t, err)
			defer s.Close()
			_, err = s.Next(ctx, randomTokens(8, cfg.VocabSize, 1))
			require.NoError(t, err)
			tok := []int32{7}
			_, err = s.Next(ctx, tok) // first single-token step sizes nothing new, but warm anyway
			require.NoError(t, err)
			allocs := testing.AllocsPerRun(50, func() {
				if _, err := s.Next(ctx, tok); err != nil {
					t.Fatal(err)
				}
			})
			if allocs != 0 {
				t.Errorf("Session.Next: %v allocations per decode step, want 0", allocs)
			}
		})
	}
}
