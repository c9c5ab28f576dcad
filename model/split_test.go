package model_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lighttransfer/lighttransfer-go/kvcache"
	"github.com/lighttransfer/lighttransfer-go/model"
)

// TestSplitPrefillEqualsOneSpan: a Test-mode selecting prefill given through Batch.Run in
// pieces (SplitPrefill), beside other sequences' steps, gives bit for bit the logits, lazy
// layers, ratios and cache of the one-span prefill of Session.Next, and the same logits on
// the decode steps after it. The cases cover a last piece shorter than w_last (the ratio
// reads queries kept from the piece before), pieces of one and two cache blocks, a single
// piece, and a prompt too short to select on; f32 and bf16 weights, one and two threads.
func TestSplitPrefillEqualsOneSpan(t *testing.T) {
	ctx := context.Background()
	cfg := runConfig(4)
	cfg.MaxPositions = 1024
	opts := []model.SessionOption{model.TestMode(model.WithSink(4), model.WithWindow(64), model.WithLast(8))}
	cases := []struct {
		name   string
		pieces []int
	}{
		{"512+2", []int{512, 2}},
		{"256+256+88", []int{256, 256, 88}},
		{"768+5", []int{768, 5}},
		{"one piece", []int{300}},
		{"too short", []int{60}},
		{"256+7", []int{256, 7}},
	}
	for _, c := range []struct {
		format  model.WeightFormat
		threads int
	}{{model.WeightsF32, 1}, {model.WeightsBF16, 2}} {
		m, err := model.Random(ctx, cfg, 31, model.WithWeightFormat(c.format), model.WithThreads(c.threads))
		require.NoError(t, err)
		for ci, tc := range cases {
			name := fmt.Sprintf("%v/threads=%d/%s", c.format, c.threads, tc.name)
			n := 0
			for _, p := range tc.pieces {
				n += p
			}
			prompt := randomTokens(n, cfg.VocabSize, uint64(50+ci))
			lone, err := m.NewSession(opts...)
			require.NoError(t, err)
			want, err := lone.Next(ctx, prompt)
			require.NoError(t, err)
			want = slices.Clone(want)

			split, err := m.NewSession(opts...)
			require.NoError(t, err)
			require.NoError(t, split.SplitPrefill(n))
			other, err := m.NewSession(model.FullAttention(), model.WithChunkSize(16))
			require.NoError(t, err)
			_, err = other.Next(ctx, randomTokens(20, cfg.VocabSize, 3))
			require.NoError(t, err)
			b := m.NewBatch()
			var got []float32
			at := 0
			for pi, p := range tc.pieces {
				out, err := b.Run(ctx, []*model.Session{other, split}, [][]int32{{int32(pi)}, prompt[at : at+p]})
				require.NoError(t, err, name)
				at += p
				got = out[1]
				if pi < len(tc.pieces)-1 {
					require.Nil(t, split.Ratios(), "%s: no ratios before the last piece", name)
				}
			}
			requireSameBits(t, want, got, "%s: prefill logits", name)
			require.Equal(t, lone.Lazy(), split.Lazy(), name)
			require.Equal(t, lone.Ratios(), split.Ratios(), name)
			require.Equal(t, lone.Usage(), split.Usage(), name)
			require.Equal(t, lone.Pos(), split.Pos(), name)
			if tc.name != "too short" {
				require.NotEmpty(t, split.Lazy(), name)
			}
			worst, err := m.EstimateKV(n, opts...)
			require.NoError(t, err)
			require.GreaterOrEqual(t, split.PeakKVBytes(), lone.PeakKVBytes(), name)
			require.LessOrEqual(t, split.PeakKVBytes(), worst, name)
			for step := range 5 {
				tok := []int32{int32(step * 7 % cfg.VocabSize)}
				w, err := lone.Next(ctx, tok)
				require.NoError(t, err)
				out, err := b.Run(ctx, []*model.Session{split, other}, [][]int32{tok, {1}})
				require.NoError(t, err)
				requireSameBits(t, w, out[0], "%s: decode step %d", name, step)
			}
			lone.Close()
			split.Close()
			other.Close()
		}
		m.Close()
	}
}

// TestSplitPrefillErrors: SplitPrefill outside a fresh Test-mode float32-KV session, and
// pieces that miss the block boundary or run past the prompt, are errors wrapping ErrOption;
// Next refuses a split session's pieces.
func TestSplitPrefillErrors(t *testing.T) {
	ctx := context.Background()
	cfg := runConfig(2)
	m, err := model.Random(ctx, cfg, 4)
	require.NoError(t, err)
	defer m.Close()
	mk := func(opts ...model.SessionOption) *model.Session {
		s, err := m.NewSession(opts...)
		require.NoError(t, err)
		return s
	}
	require.ErrorIs(t, mk(model.FullAttention()).SplitPrefill(10), model.ErrOption)
	require.ErrorIs(t, mk(model.TestMode(), model.WithKV(kvcache.Q8)).SplitPrefill(10), model.ErrOption)
	s := mk(model.TestMode())
	require.ErrorIs(t, s.SplitPrefill(0), model.ErrOption)
	require.ErrorIs(t, s.SplitPrefill(cfg.MaxPositions+1), model.ErrOption)
	s = mk(model.TestMode())
	require.NoError(t, s.MakeStreaming(1))
	require.ErrorIs(t, s.SplitPrefill(10), model.ErrOption)
	s = mk(model.TestMode())
	_, err = s.Next(ctx, []int32{1, 2, 3})
	require.NoError(t, err)
	require.ErrorIs(t, s.SplitPrefill(10), model.ErrOption)

	s = mk(model.TestMode())
	require.NoError(t, s.SplitPrefill(300))
	require.ErrorIs(t, s.SplitPrefill(300), model.ErrOption)
	_, err = s.Next(ctx, []int32{1})
	require.ErrorIs(t, err, model.ErrOption)
	b := m.NewBatch()
	prompt := randomTokens(300, cfg.VocabSize, 1)
	_, err = b.Run(ctx, []*model.Session{mk(), s}, [][]int32{{1}, prompt[:100]})
	require.ErrorIs(t, err, model.ErrOption)
	require.ErrorContains(t, err, "session 1: a piece of a split prefill ends at 100, not a multiple of 256")
	_, err = b.Run(ctx, []*model.Session{s}, [][]int32{append(prompt, 1)})
	require.ErrorIs(t, err, model.ErrOption)
	require.ErrorContains(t, err, "run past its split prefill of 300")
	require.Zero(t, s.Pos())
	_, err = b.Run(ctx, []*model.Session{s}, [][]int32{prompt[:256]})
	require.NoError(t, err)
	_, err = b.Run(ctx, []*model.Session{s}, [][]int32{prompt[256:]})
	require.NoError(t, err)
	require.Equal(t, 300, s.Pos())
	_, err = s.Next(ctx, []int32{1})
	require.NoError(t, err, "Next works once the split prefill is done")
}
