package model_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lighttransfer/lighttransfer-go/internal/testutil"
	"github.com/lighttransfer/lighttransfer-go/loader"
	"github.com/lighttransfer/lighttransfer-go/model"
)

// TestByteAccounting cross-checks the library's byte counts with independent sources: the
// weight bytes of an F32 checkpoint equal the sizes of its tensors in the safetensors header,
// bf16 storage halves the matrices, and the KV bytes a decode step reads equal
// tokens × layers × 2 (K and V) × kv_heads × head_dim × 4 for a full-attention session.
func TestByteAccounting(t *testing.T) {
	dir := testutil.Testdata(t, "stories260K")
	ck, err := loader.Open(dir)
	require.NoError(t, err)
	var fileBytes, vectorBytes int64
	for _, ti := range ck.Tensors() {
		fileBytes += ti.Size
		if len(ti.Shape) == 1 {
			vectorBytes += ti.Size
		}
	}
	require.NoError(t, ck.Close())

	ctx := context.Background()
	m := loadModel(t, dir)
	require.Equal(t, fileBytes, m.WeightBytes())
	mb := loadModel(t, dir, model.WithWeightFormat(model.WeightsBF16))
	require.Equal(t, vectorBytes+(fileBytes-vectorBytes)/2, mb.WeightBytes())

	s, err := m.NewSession()
	require.NoError(t, err)
	_, err = s.Next(ctx, []int32{1, 403, 407, 261, 378, 432, 383})
	require.NoError(t, err)
	cfg := m.Config()
	kv := int64(7 * cfg.NumLayers * 2 * cfg.NumKVHeads * cfg.HeadDim * 4)
	require.Equal(t, kv, s.Usage().DataBytes)
	require.Equal(t, fileBytes+kv, m.StepReadBytes(s))
	require.Equal(t, fileBytes+2*kv, m.StepReadBytes(s, s))
}
