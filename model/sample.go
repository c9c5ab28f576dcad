package model

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Sampling configures how the next token is drawn from the logits. The zero value is greedy
// decoding (always the most likely token).
//
// The steps run in Hugging Face's order: repetition penalty, temperature, top-k, top-p,
// min-p, then a draw from what is left.
type Sampling struct {
	// Temperature divides the logits; 0 (the default) means greedy. Must be >= 0 and finite.
	Temperature float64
	// TopK keeps the K most likely tokens; 0 (the default) keeps all. Must be >= 0.
	TopK int
	// TopP keeps the smallest set of most likely tokens whose probability reaches TopP;
	// 0 (the default) and 1 keep all. Must be in [0, 1].
	TopP float64
	// MinP drops tokens less likely than MinP times the most likely one; 0 (the default) keeps
	// all. Must be in [0, 1].
	MinP float64
	// RepetitionPenalty divides positive (multiplies negative) logits of tokens already in the
	// sequence; 0 (the default) and 1 mean none. Must be >= 0.
	RepetitionPenalty float64
	// Seed seeds the random draws, so equal seeds give equal outputs.
	Seed uint64
}

// Validate reports a field outside its documented range.
func (s Sampling) Validate() error {
	switch {
	case math.IsNaN(s.Temperature) || s.Temperature < 0 || math.IsInf(s.Temperature, 0):
		return fmt.Errorf("%w: temperature %v must be finite and >= 0", ErrOption, s.Temperature)
	case s.TopK < 0:
		return fmt.Errorf("%w: top-k %d must be >= 0", ErrOption, s.TopK)
	case math.IsNaN(s.TopP) || s.TopP < 0 || s.TopP > 1:
		return fmt.Errorf("%w: top-p %v must be in (0, 1] (0 disables it)", ErrOption, s.TopP)
	case math.IsNaN(s.MinP) || s.MinP < 0 || s.MinP > 1:
		return fmt.Errorf("%w: min-p %v must be in [0, 1]", ErrOption, s.MinP)
	case math.IsNaN(s.RepetitionPenalty) || s.RepetitionPenalty < 0 || math.IsInf(s.RepetitionPenalty, 0):
		return fmt.Errorf("%w: repetition penalty %v must be finite and >= 0", ErrOption, s.RepetitionPenalty)
	}
	return nil
}

// Greedy reports whether s always picks the most likely token.
func (s Sampling) Greedy() bool { return s.Temperature == 0 }

// sampler draws tokens; its buffers are sized once for the vocabulary.
type sampler struct {
	cfg   Sampling
	rng   *rand.Rand
	work  []float32
	idx   []int32
	probs []float64
	seen  map[int32]struct{}
}

func newSampler(cfg Sampling, vocab int) *sampler {
	s := &sampler{cfg: cfg, work: make([]float32, vocab), seen: map[int32]struct{}{}}
	if !cfg.Greedy() {
		s.rng = rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
		s.idx = make([]int32, vocab)
		s.probs = make([]float64, vocab)
	}
	return s
}

// observe records a token of the sequence for the repetition penalty.
func (s *sampler) observe(id int32) { s.seen[id] = struct{}{} }

// next picks a token from logits (which it does not modify).
func (s *sampler) next(logits []float32) int32 {
	w := s.work[:len(logits)]
	copy(w, logits)
	if p := float32(s.cfg.RepetitionPenalty); p != 0 && p != 1 {
		for id := range s.seen {
			if w[id] > 0 {
				w[id] /= p
			} else {
				w[id] *= p
			}
		}
	}
	if s.cfg.Greedy() {
		best := 0
		for i, v := range w {
			if v > w[best] {
				best = i
			}
		}
		return int32(best)
	}
	t := float32(s.cfg.Temperature)
	idx := s.idx[:len(w)]
	for i := range w {
		w[i] /= t
		idx[i] = int32(i)
	}
	// Sort candidates by logit, highest first (ties by id for reproducibility).
	slices.SortFunc(idx, func(a, b int32) int {
		if c := cmp.Compare(w[b], w[a]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	n := len(idx)
	if k := s.cfg.TopK; k > 0 && k < n {
		n = k
	}
	probs := s.probs[:n]
	mx := float64(w[idx[0]])
	var sum float64
	for i := 0; i < n; i++ {
		probs[i] = math.Exp(float64(w[idx[i]]) - mx)
		sum += probs[i]
	}
	for i := range probs {
		probs[i] /= sum
	}
	if p := s.cfg.TopP; p > 0 && p < 1 {
		var c float64
		for i := 0; i < n; i++ {
			c += probs[i]
			if c >= p {
				n = i + 1
				break
			}
		}
	}
	if mp := s.cfg.MinP; mp > 0 {
		th := mp * probs[0]
		for i := 1; i < n; i++ {
			if probs[i] < th {
				n = i
				break
			}
		}
	}
	var total float64
	for i := 0; i < n; i++ {
		total += probs[i]
	}
	r := s.rng.Float64() * total
	for i := 0; i < n; i++ {
		r -= probs[i]
		if r < 0 {
			return idx[i]
		}
	}
	return idx[n-1]
}
