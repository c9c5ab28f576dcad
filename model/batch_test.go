package model_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lighttransfer/lighttransfer-go/model"
)

// TestBatchStepEqualsNext: a batch step over sessions in different modes and at different
// positions gives each session the logits its own Next gives, bit for bit: the batch
// multiplies all rows at once (matrix-matrix kernel) where Next uses the matrix-vector
// kernel, and both sum every output in the same order.
func TestBatchStepEqualsNext(t *testing.T) {
	cfg := smallConfig(4, 512)
	m, err := model.Random(context.Background(), cfg, 11)
	require.NoError(t, err)
	ctx := context.Background()
	mk := func() []*model.Session {
		var out []*model.Session
		for i, opt := range []model.SessionOption{
			model.FullAttention(),
			model.TestMode(model.WithSink(2), model.WithWindow(16), model.WithLast(8)),
			model.FixedMode([]int{0, 3}, model.WithSink(1), model.WithWindow(9)),
		} {
			s, err := m.NewSession(opt)
			require.NoError(t, err)
			_, err = s.Next(ctx, randomTokens(40+13*i, cfg.VocabSize, uint64(i)))
			require.NoError(t, err)
			out = append(out, s)
		}
		return out
	}
	solo, batched := mk(), mk()
	require.Equal(t, solo[1].Lazy(), batched[1].Lazy())
	require.NotEmpty(t, solo[1].Lazy())
	b := m.NewBatch()
	for step := 0; step < 20; step++ {
		toks := randomTokens(3, cfg.VocabSize, uint64(100+step))
		got, err := b.Step(ctx, batched, toks)
		require.NoError(t, err)
		for i, s := range solo {
			want, err := s.Next(ctx, toks[i:i+1])
			require.NoError(t, err)
			requireSameBits(t, want, got[i], "step %d session %d", step, i)
		}
	}
	for i := range solo {
		require.Equal(t, solo[i].Pos(), batched[i].Pos())
		require.Equal(t, solo[i].Usage(), batched[i].Usage())
	}

	_, err = b.Step(ctx, []*model.Session{batched[0], batched[0]}, []int32{1, 2})
	require.ErrorIs(t, err, model.ErrOption)
	_, err = b.Step(ctx, batched, []int32{1, 2, 999})
	require.ErrorIs(t, err, model.ErrToken)
}

// TestGenerateBatchEqualsSequential: batched greedy generation reproduces each prompt's own
// greedy generation on stories260K.
func TestGenerateBatchEqualsSequential(t *testing.T) {
	m := stories(t)
	ctx := context.Background()
	prompts := []string{"Once upon a time", "The dog", "Lily and Tom went to the park", ""}
	res, err := m.GenerateBatch(ctx, prompts, model.WithMaxTokens(48))
	require.NoError(t, err)
	require.Len(t, res, len(prompts))
	for i, p := range prompts {
		want, err := m.Generate(ctx, p, model.WithMaxTokens(48))
		require.NoError(t, err)
		require.Equal(t, want.Tokens, res[i].Tokens, "prompt %q", p)
		require.Equal(t, want.Text, res[i].Text)
		require.Equal(t, want.Finish, res[i].Finish)
	}
}
