package model

import (
	"fmt"
	"math/rand/v2"
)

// FillSynthetic appends n positions of seeded random keys and values (uniform in [-1, 1]) to
// every layer of the session's cache without running the model, and moves the session's
// position past them: the cache a prefill of n tokens leaves, in size, layout, element types
// and byte accounting, but not in content. It exists for measuring decode speed at depth,
// which does not depend on what the keys and values hold, without the quadratic cost of a
// real prefill (examples/bench -fill synthetic); the logits that follow are meaningless.
// Streaming layers keep what their policy keeps. Test mode sessions that have not run their
// selecting prefill are refused (wrapping ErrOption), as is n < 0 (ErrOption) or a position
// past the session's context (ErrContext); a closed session or model returns ErrClosed.
func (s *Session) FillSynthetic(n int, seed uint64) error {
	if s.err != nil {
		return s.err
	}
	if err := s.m.errIfClosed(); err != nil {
		return err
	}
	if n < 0 {
		return fmt.Errorf("%w: synthetic fill of %d positions", ErrOption, n)
	}
	if s.mode == ModeTest && !s.selected {
		return fmt.Errorf("%w: a Test mode session selects its lazy layers on a real prefill first", ErrOption)
	}
	if s.pos+n > s.maxCtx {
		return fmt.Errorf("%w: %d synthetic positions after %d already held exceed the context of %d", ErrContext, n, s.pos, s.maxCtx)
	}
	cfg := s.m.cfg
	kvd := cfg.NumKVHeads * cfg.HeadDim
	const block = 256
	r := rand.New(rand.NewPCG(seed, 0xf111))
	k, v := make([]float32, block*kvd), make([]float32, block*kvd)
	pos := make([]int32, block)
	for done := 0; done < n; {
		c := min(block, n-done)
		for i := range pos[:c] {
			pos[i] = int32(s.pos + done + i)
		}
		for li := range cfg.NumLayers {
			for i := range k[:c*kvd] {
				k[i], v[i] = 2*r.Float32()-1, 2*r.Float32()-1
			}
			if err := s.appendKV(li, k[:c*kvd], v[:c*kvd], pos[:c]); err != nil {
				return err
			}
		}
		done += c
	}
	s.pos += n
	return nil
}
