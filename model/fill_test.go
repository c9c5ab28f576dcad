package model_test

import (
	"context"
	"testing"

	"github.com/lighttransfer/lighttransfer-go/kvcache"
	"github.com/lighttransfer/lighttransfer-go/model"
	"github.com/stretchr/testify/require"
)

// TestFillSynthetic: a synthetic fill leaves the cache a prefill of the same length leaves in
// position, bytes and per-layer usage (full and fixed-mode streaming layers), the session then
// decodes, and bad uses are refused with the documented sentinels.
func TestFillSynthetic(t *testing.T) {
	ctx := context.Background()
	cfg := smallConfig(4, 1024)
	m, err := model.Random(ctx, cfg, 7)
	require.NoError(t, err)
	const n = 600
	opts := []model.SessionOption{model.FixedMode([]int{1, 2}, model.WithSink(2), model.WithWindow(50)), model.WithKVTypes(kvcache.Q8, kvcache.BF16)}
	real, err := m.NewSession(opts...)
	require.NoError(t, err)
	_, err = real.Next(ctx, randomTokens(n, cfg.VocabSize, 8))
	require.NoError(t, err)
	syn, err := m.NewSession(opts...)
	require.NoError(t, err)
	require.NoError(t, syn.FillSynthetic(n-100, 1))
	require.NoError(t, syn.FillSynthetic(100, 2))
	require.Equal(t, real.Pos(), syn.Pos())
	require.Equal(t, real.Usage(), syn.Usage())
	_, err = syn.Next(ctx, randomTokens(3, cfg.VocabSize, 9))
	require.NoError(t, err)

	require.ErrorIs(t, syn.FillSynthetic(-1, 1), model.ErrOption)
	require.ErrorIs(t, syn.FillSynthetic(1024, 1), model.ErrContext)
	tm, err := m.NewSession(model.TestMode())
	require.NoError(t, err)
	require.ErrorIs(t, tm.FillSynthetic(10, 1), model.ErrOption)
	syn.Close()
	require.ErrorIs(t, syn.FillSynthetic(1, 1), model.ErrClosed)
}
