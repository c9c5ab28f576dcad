package train

import (
	"math"
)

// AdamW holds the hyper-parameters of torch.optim.AdamW (decoupled weight decay, applied to
// every parameter). The zero value means PyTorch's defaults: betas (0.9, 0.999), eps 1e-8,
// weight decay 0.01; LR has no default and must be set.
type AdamW struct {
	LR          float64
	Beta1       float64
	Beta2       float64
	Eps         float64
	WeightDecay float64 // negative: none
}

func (a AdamW) filled() AdamW {
	if a.Beta1 == 0 {
		a.Beta1 = 0.9
	}
	if a.Beta2 == 0 {
		a.Beta2 = 0.999
	}
	if a.Eps == 0 {
		a.Eps = 1e-8
	}
	if a.WeightDecay == 0 {
		a.WeightDecay = 0.01
	}
	if a.WeightDecay < 0 {
		a.WeightDecay = 0
	}
	return a
}

// adamState is the optimizer's moment estimates, one pair of slices per parameter.
type adamState struct {
	step int
	m, v [][]float32
}

func newAdamState(w *Weights) *adamState {
	s := &adamState{}
	for _, p := range w.Params {
		s.m = append(s.m, make([]float32, len(p.Data)))
		s.v = append(s.v, make([]float32, len(p.Data)))
	}
	return s
}

// adamWStep applies one AdamW step at learning rate lr to every parameter (those with
// frozen[i] set excepted; frozen may be nil) given its gradient, in float32 like torch.optim.AdamW's single-tensor path: p ← p·(1−lr·wd), then
// p ← p − lr/(1−β1ᵗ) · m / (sqrt(v)/sqrt(1−β2ᵗ) + eps).
func adamWStep(w *Weights, grads [][]float32, s *adamState, h AdamW, lr float64, frozen []bool) {
	h = h.filled()
	s.step++
	t := float64(s.step)
	bc1 := 1 - math.Pow(h.Beta1, t)
	bc2 := 1 - math.Pow(h.Beta2, t)
	stepSize := float32(lr / bc1)
	bc2s := float32(math.Sqrt(bc2))
	decay := float32(1 - lr*h.WeightDecay)
	b1, b2 := float32(h.Beta1), float32(h.Beta2)
	eps := float32(h.Eps)
	for i, p := range w.Params {
		if frozen != nil && frozen[i] {
			continue
		}
		g, m, v := grads[i], s.m[i], s.v[i]
		d := p.Data
		parallel(len(d), func(lo, hi int) {
			for j := lo; j < hi; j++ {
				d[j] *= decay
				m[j] = b1*m[j] + (1-b1)*g[j]
				v[j] = b2*v[j] + (1-b2)*g[j]*g[j]
				den := float32(math.Sqrt(float64(v[j])))/bc2s + eps
				d[j] -= stepSize * m[j] / den
			}
		})
	}
}

// Schedule is the learning rate over training: linear warmup from 0 over Warmup steps to the
// peak, then cosine decay to MinRatio·peak at step Total.
type Schedule struct {
	Peak     float64
	Warmup   int
	Total    int
	MinRatio float64
}

// At returns the learning rate of step (0-based).
func (s Schedule) At(step int) float64 {
	if s.Warmup > 0 && step < s.Warmup {
		return s.Peak * float64(step+1) / float64(s.Warmup)
	}
	if s.Total <= s.Warmup {
		return s.Peak
	}
	p := math.Min(1, float64(step-s.Warmup)/float64(s.Total-s.Warmup))
	return s.Peak * (s.MinRatio + (1-s.MinRatio)*0.5*(1+math.Cos(math.Pi*p)))
}

// globalNorm returns the L2 norm over every gradient, in float64.
func globalNorm(grads [][]float32) float64 {
	var s float64
	for _, g := range grads {
		for _, x := range g {
			s += float64(x) * float64(x)
		}
	}
	return math.Sqrt(s)
}

// clip scales grads so that their global norm is at most maxNorm (≤ 0: no clipping), as
// torch.nn.utils.clip_grad_norm_ does, and returns the norm before clipping.
func clip(grads [][]float32, maxNorm float64) float64 {
	n := globalNorm(grads)
	if maxNorm > 0 && n > maxNorm {
		c := float32(maxNorm / (n + 1e-6))
		for _, g := range grads {
			for i := range g {
				g[i] *= c
			}
		}
	}
	return n
}
