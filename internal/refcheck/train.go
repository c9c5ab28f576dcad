package refcheck

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"testing/fstest"

	"github.com/lighttransfer/lighttransfer-go/loader"
)

// TrainReference is the content of a train_step.json file: one LightTransfer-Train step
// computed in PyTorch (see the reference README).
type TrainReference struct {
	Tokens      []int32 `json:"tokens"`
	LazyLayers  []int   `json:"lazy_layers"`
	Sink        int     `json:"sink"`
	Window      int     `json:"window"`
	LossFromRow int     `json:"loss_from_row"`
	Loss        float64 `json:"loss"`
	AdamW       struct {
		LR          float64    `json:"lr"`
		Betas       [2]float64 `json:"betas"`
		Eps         float64    `json:"eps"`
		WeightDecay float64    `json:"weight_decay"`
	} `json:"adamw"`
	GradNorm float64 `json:"grad_norm"`
}

// TrainOutcome is what an implementation computed for a TrainReference: the loss, the
// gradient of every parameter (unclipped) and every parameter after one AdamW step, by
// Hugging Face name.
type TrainOutcome struct {
	Loss  float64
	Grads map[string][]float32
	After map[string][]float32
}

// TrainStep computes one training step of the checkpoint in modelDir as ref describes.
type TrainStep func(ctx context.Context, modelDir string, ref *TrainReference) (*TrainOutcome, error)

// Tolerances of the training checks: the loss within TrainLossTol relative; each gradient
// within TrainGradTol·max|g_ref| of its tensor; parameters after one step within
// TrainAdamTol·lr where |g_ref| > TrainAdamMinGrad.
const (
	TrainLossTol     = 1e-5
	TrainGradTol     = 1e-4
	TrainAdamTol     = 1e-2
	TrainAdamMinGrad = 1e-6
)

// Files of a training reference. The parameters after the step are after_adamw.safetensors
// or, in the repository's compact copy, after_adamw_delta.safetensors holding
// (after − before)/lr in float16 (its rounding, 5e-4·lr at most, is far inside TrainAdamTol).
const (
	TrainStepFile  = "train_step.json"
	TrainGradsFile = "grads.safetensors"
	TrainAfterFile = "after_adamw.safetensors"
	TrainDeltaFile = "after_adamw_delta.safetensors"
)

// ReadTrainReference reads dir/train_step.json.
func ReadTrainReference(dir string) (*TrainReference, error) {
	p := filepath.Join(dir, TrainStepFile)
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrNoReference, dir, err)
	}
	var r TrainReference
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("refcheck: %s: %w", p, err)
	}
	if len(r.Tokens) < 2 || r.LossFromRow < 0 || r.LossFromRow >= len(r.Tokens)-1 || r.AdamW.LR <= 0 {
		return nil, fmt.Errorf("refcheck: %s: tokens (%d), loss_from_row (%d) or lr (%v) inconsistent", p, len(r.Tokens), r.LossFromRow, r.AdamW.LR)
	}
	return &r, nil
}

// readTensors reads every tensor of a safetensors file as float32 (any dtype the loader
// converts), using modelDir's config.json to open it.
func readTensors(path, modelDir string) (map[string][]float32, error) {
	cfg, err := os.ReadFile(filepath.Join(modelDir, loader.ConfigFile))
	if err != nil {
		return nil, fmt.Errorf("refcheck: %w", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("refcheck: %w", err)
	}
	ck, err := loader.OpenFS(fstest.MapFS{loader.ConfigFile: {Data: cfg}, loader.SingleFile: {Data: data}})
	if err != nil {
		return nil, fmt.Errorf("refcheck: %s: %w", path, err)
	}
	defer ck.Close()
	out := map[string][]float32{}
	for _, t := range ck.Tensors() {
		d, err := ck.Float32(t.Name)
		if err != nil {
			return nil, fmt.Errorf("refcheck: %s: %w", path, err)
		}
		out[t.Name] = append([]float32(nil), d.Data().([]float32)...)
	}
	return out, nil
}

// CheckTrain runs step on the reference in dir (train_step.json, grads and the parameters
// after AdamW) for the starting checkpoint in modelDir, and returns three results:
// train.loss, train.grad (the largest error relative to its tolerance over all tensors) and
// train.adamw. The error reports a reference that could not be read or a step that failed.
func CheckTrain(ctx context.Context, dir, modelDir string, step TrainStep) ([]Result, error) {
	ref, err := ReadTrainReference(dir)
	if err != nil {
		return nil, err
	}
	grads, err := readTensors(filepath.Join(dir, TrainGradsFile), modelDir)
	if err != nil {
		return nil, err
	}
	after, err := ReadTrainAfter(dir, modelDir, ref.AdamW.LR)
	if err != nil {
		return nil, err
	}
	got, err := step(ctx, modelDir, ref)
	if err != nil {
		return nil, err
	}
	lossR := Result{Dir: dir, Key: "train.loss", Status: Pass, MaxAbsErr: math.Abs(got.Loss - ref.Loss),
		Tol: TrainLossTol * math.Abs(ref.Loss)}
	if !(lossR.MaxAbsErr <= lossR.Tol) {
		lossR.Status = Fail
	}
	gradR := Result{Dir: dir, Key: "train.grad", Status: Pass}
	adamR := Result{Dir: dir, Key: "train.adamw", Status: Pass, Tol: TrainAdamTol * ref.AdamW.LR}
	names := make([]string, 0, len(grads))
	for n := range grads {
		names = append(names, n)
	}
	sort.Strings(names)
	worst := -1.0
	compared := 0
	for _, n := range names {
		gr, ga := grads[n], got.Grads[n]
		if len(ga) != len(gr) {
			gradR.Status, gradR.Note = Fail, fmt.Sprintf("tensor %q: got %d gradient values, want %d", n, len(ga), len(gr))
			continue
		}
		var mx, e float64
		for i := range gr {
			mx = math.Max(mx, math.Abs(float64(gr[i])))
			d := math.Abs(float64(ga[i]) - float64(gr[i]))
			if math.IsNaN(d) {
				d = math.Inf(1)
			}
			e = math.Max(e, d)
		}
		tol := TrainGradTol * mx
		if r := e / tol; r > worst || math.IsNaN(r) {
			worst = r
			gradR.MaxAbsErr, gradR.Tol = e, tol
			gradR.Note = "worst tensor " + n
		}
		if !(e <= tol) {
			gradR.Status = Fail
		}
		ar, aa := after[n], got.After[n]
		if len(ar) != len(gr) || len(aa) != len(gr) {
			adamR.Status, adamR.Note = Fail, fmt.Sprintf("tensor %q: got %d values after the step, reference %d", n, len(aa), len(ar))
			continue
		}
		for i := range ar {
			if math.Abs(float64(gr[i])) <= TrainAdamMinGrad {
				continue
			}
			compared++
			d := math.Abs(float64(aa[i]) - float64(ar[i]))
			if math.IsNaN(d) {
				d = math.Inf(1)
			}
			adamR.MaxAbsErr = math.Max(adamR.MaxAbsErr, d)
		}
	}
	if len(got.Grads) != len(grads) {
		gradR.Status, gradR.Note = Fail, fmt.Sprintf("%d gradients computed, the reference has %d", len(got.Grads), len(grads))
	}
	if adamR.MaxAbsErr > adamR.Tol {
		adamR.Status = Fail
	}
	if adamR.Note == "" {
		adamR.Note = fmt.Sprintf("%d values with |g_ref| > %g", compared, TrainAdamMinGrad)
	}
	return []Result{lossR, gradR, adamR}, nil
}

// ReadTrainAfter returns the parameters after the reference step in dir, by tensor name:
// dir/after_adamw.safetensors when it exists, else rebuilt from the compact
// dir/after_adamw_delta.safetensors, lr and the starting weights in modelDir.
func ReadTrainAfter(dir, modelDir string, lr float64) (map[string][]float32, error) {
	after, err := readTensors(filepath.Join(dir, TrainAfterFile), modelDir)
	if errors.Is(err, fs.ErrNotExist) {
		return afterFromDelta(dir, modelDir, lr)
	}
	return after, err
}

// afterFromDelta rebuilds the parameters after the step from the compact delta file and the
// starting weights.
func afterFromDelta(dir, modelDir string, lr float64) (map[string][]float32, error) {
	delta, err := readTensors(filepath.Join(dir, TrainDeltaFile), modelDir)
	if err != nil {
		return nil, err
	}
	before, err := readTensors(filepath.Join(modelDir, loader.SingleFile), modelDir)
	if err != nil {
		return nil, err
	}
	out := map[string][]float32{}
	for n, d := range delta {
		b := before[n]
		if len(b) != len(d) {
			return nil, fmt.Errorf("refcheck: %s: tensor %q has %d values, the checkpoint %d", TrainDeltaFile, n, len(d), len(b))
		}
		a := make([]float32, len(d))
		for i := range d {
			a[i] = float32(float64(b[i]) + lr*float64(d[i]))
		}
		out[n] = a
	}
	return out, nil
}
