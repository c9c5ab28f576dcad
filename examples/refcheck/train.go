package main

import (
	"context"
	"fmt"
	"io"

	"github.com/lighttransfer/lighttransfer-go/internal/refcheck"
	"github.com/lighttransfer/lighttransfer-go/train"
)

// trainStep is package train's step in the form refcheck.CheckTrain runs.
func trainStep(_ context.Context, dir string, r *refcheck.TrainReference) (*refcheck.TrainOutcome, error) {
	h := r.AdamW
	loss, g, a, err := train.PyTorchStep(dir, train.Mask{Lazy: r.LazyLayers, Sink: r.Sink, Window: r.Window}, r.Tokens,
		r.LossFromRow, h.LR, h.Betas[0], h.Betas[1], h.Eps, h.WeightDecay)
	return &refcheck.TrainOutcome{Loss: loss, Grads: g, After: a}, err
}

// checkTrain prints the train.loss, train.grad and train.adamw lines of the reference in dir
// for the starting checkpoint in modelDir (dir itself when empty).
func checkTrain(ctx context.Context, dir, modelDir string, stdout io.Writer) error {
	if modelDir == "" {
		modelDir = dir
	}
	res, err := refcheck.CheckTrain(ctx, dir, modelDir, trainStep)
	if err != nil {
		return err
	}
	failed := false
	for _, r := range res {
		fmt.Fprintln(stdout, r)
		failed = failed || r.Status == refcheck.Fail
	}
	if failed {
		return errFailed
	}
	return nil
}
