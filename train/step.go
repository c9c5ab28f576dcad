package train

import (
	"fmt"
	"math"
)

// StepResult is what OneStep computed before updating the weights.
type StepResult struct {
	Loss     float64
	GradNorm float64              // global L2 norm of the gradients (not clipped)
	Grads    map[string][]float32 // d loss / d parameter, by Hugging Face name
}

// OneStep runs one unclipped training step on a single sequence: the mean next-token
// cross-entropy of rows fromRow..len(tokens)-2 under mask, its gradients and one AdamW step
// (lr h.LR, bias-corrected as torch.optim.AdamW's first step) applied to w in place. It is
// the step the PyTorch reference computes.
func OneStep(w *Weights, mask Mask, tokens []int32, fromRow int, h AdamW) (*StepResult, error) {
	cfg := w.Config
	if err := mask.Validate(cfg.NumLayers); err != nil {
		return nil, err
	}
	T := len(tokens)
	if T < 2 || fromRow < 0 || fromRow > T-2 {
		return nil, fmt.Errorf("%w: %d tokens scored from row %d", ErrConfig, T, fromRow)
	}
	if T > cfg.MaxPositions {
		return nil, fmt.Errorf("%w: %d tokens exceed the model's context of %d", ErrConfig, T, cfg.MaxPositions)
	}
	if !(h.LR > 0) || math.IsInf(h.LR, 0) {
		return nil, fmt.Errorf("%w: learning rate %v", ErrConfig, h.LR)
	}
	s := Sequence{Tokens: tokens, Targets: make([]int32, T)}
	for i := range T {
		s.Targets[i] = -1
		if i >= fromRow && i+1 < T {
			s.Targets[i] = tokens[i+1]
		}
		if tokens[i] < 0 || int(tokens[i]) >= cfg.VocabSize {
			return nil, fmt.Errorf("%w: token %d at %d outside the vocabulary of %d", ErrData, tokens[i], i, cfg.VocabSize)
		}
	}
	n, err := newNet(w, mask, 1, T, false, true)
	if err != nil {
		return nil, err
	}
	loss, err := n.run(makeBatch([]Sequence{s}, 0, 1, nil))
	if err != nil {
		return nil, err
	}
	if math.IsNaN(loss) || math.IsInf(loss, 0) {
		return nil, fmt.Errorf("%w at step 1 (loss %v)", ErrNonFinite, loss)
	}
	res := &StepResult{Loss: loss, Grads: map[string][]float32{}}
	grads := make([][]float32, len(w.Params))
	for i, p := range w.Params {
		grads[i] = append([]float32(nil), n.grad(i)...)
		res.Grads[p.Name] = grads[i]
	}
	res.GradNorm = globalNorm(grads)
	adamWStep(w, grads, newAdamState(w), h, h.LR, nil)
	return res, nil
}

// PyTorchStep loads the checkpoint in modelDir and runs OneStep on it with the AdamW
// hyper-parameters spelled as torch.optim.AdamW's (weight decay 0 means none), returning the
// loss, the gradients and the parameters after the step by Hugging Face name. It is the step
// examples/refcheck -train compares with a PyTorch reference.
func PyTorchStep(modelDir string, mask Mask, tokens []int32, fromRow int, lr, beta1, beta2, eps, weightDecay float64) (loss float64, grads, after map[string][]float32, err error) {
	w, err := LoadWeights(modelDir)
	if err != nil {
		return 0, nil, nil, err
	}
	if weightDecay == 0 {
		weightDecay = -1
	}
	r, err := OneStep(w, mask, tokens, fromRow, AdamW{LR: lr, Beta1: beta1, Beta2: beta2, Eps: eps, WeightDecay: weightDecay})
	if err != nil {
		return 0, nil, nil, err
	}
	after = map[string][]float32{}
	for _, p := range w.Params {
		after[p.Name] = p.Data
	}
	return r.Loss, r.Grads, after, nil
}
