package train

import (
	"context"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lighttransfer/lighttransfer-go/internal/refcheck"
)

func refStep(_ context.Context, dir string, r *refcheck.TrainReference) (*refcheck.TrainOutcome, error) {
	h := r.AdamW
	loss, g, a, err := PyTorchStep(dir, Mask{Lazy: r.LazyLayers, Sink: r.Sink, Window: r.Window}, r.Tokens, r.LossFromRow,
		h.LR, h.Betas[0], h.Betas[1], h.Eps, h.WeightDecay)
	return &refcheck.TrainOutcome{Loss: loss, Grads: g, After: a}, err
}

// TestPyTorchReference checks one training step against the PyTorch reference copied into
// testdata: loss within 1e-5 relative, every gradient within 1e-4·max|g| of its tensor, the
// parameters after AdamW within 1e-2·lr where |g_ref| > 1e-6.
func TestPyTorchReference(t *testing.T) {
	res, err := refcheck.CheckTrain(context.Background(), "../testdata/train-stories260K", "../testdata/stories260K", refStep)
	require.NoError(t, err)
	require.Len(t, res, 3)
	for _, r := range res {
		t.Log(r)
		require.Equal(t, refcheck.Pass, r.Status, r.String())
	}
	ref, err := refcheck.ReadTrainReference("../testdata/train-stories260K")
	require.NoError(t, err)
	w, err := LoadWeights("../testdata/stories260K")
	require.NoError(t, err)
	st, err := OneStep(w, Mask{Lazy: ref.LazyLayers, Sink: ref.Sink, Window: ref.Window}, ref.Tokens, ref.LossFromRow, AdamW{LR: ref.AdamW.LR})
	require.NoError(t, err)
	require.InEpsilon(t, ref.GradNorm, st.GradNorm, 1e-5, "global gradient norm")
}

// TestPyTorchReferenceDetectsErrors makes sure the comparison can fail: a gradient off by
// 1e-3 of its tensor's largest entry, a loss off by 1e-4 relative and a parameter off by
// 0.1·lr after the step each turn their check to FAIL.
func TestPyTorchReferenceDetectsErrors(t *testing.T) {
	const name = "model.layers.2.mlp.up_proj.weight"
	for _, tc := range []struct {
		key     string
		corrupt func(o *refcheck.TrainOutcome, lr float64)
	}{
		{"train.loss", func(o *refcheck.TrainOutcome, _ float64) { o.Loss *= 1 + 1e-4 }},
		{"train.grad", func(o *refcheck.TrainOutcome, _ float64) {
			g := o.Grads[name]
			var mx float32
			for _, x := range g {
				mx = max(mx, float32(math.Abs(float64(x))))
			}
			g[17] += 1e-3 * mx
		}},
		{"train.adamw", func(o *refcheck.TrainOutcome, lr float64) {
			for i, g := range o.Grads[name] {
				if math.Abs(float64(g)) > 1e-5 {
					o.After[name][i] += float32(0.1 * lr)
					return
				}
			}
		}},
	} {
		t.Run(tc.key, func(t *testing.T) {
			res, err := refcheck.CheckTrain(context.Background(), "../testdata/train-stories260K", "../testdata/stories260K",
				func(ctx context.Context, dir string, r *refcheck.TrainReference) (*refcheck.TrainOutcome, error) {
					o, err := refStep(ctx, dir, r)
					if err == nil {
						tc.corrupt(o, r.AdamW.LR)
					}
					return o, err
				})
			require.NoError(t, err)
			for _, r := range res {
				want := refcheck.Pass
				if r.Key == tc.key {
					want = refcheck.Fail
				}
				require.Equal(t, want, r.Status, r.String())
			}
		})
	}
}
