package serve

import (
	"time"

	"github.com/lighttransfer/lighttransfer-go/model"
)

// work is one step: what the loop planned under the lock and what the forward produced.
type work struct {
	dec      []*request // decoding requests, one token each
	pre      []*request // requests getting a prefill chunk
	chunks   [][]int32  // pre[i]'s chunk
	sessions []*model.Session
	tokens   []int32

	ended     []*request // requests that finished in the step
	errs      []error    // and why (nil: normally)
	prefilled []*request // requests whose prompt is now all in
	generated int        // tokens accepted in the step
}

// chunk returns the next prefill span of r's prompt, where Session.Next would put it: up to
// ChunkSize tokens on from the tokens already fed, or all of a Test-mode session's prompt in
// its first forward (the selecting prefill is one span).
func chunk(r *request) []int32 {
	s, p := r.seq.Session(), r.seq.Prompt()
	if s.Mode() == model.ModeTest && r.fed == 0 {
		return p
	}
	return p[r.fed:min(len(p), r.fed+s.ChunkSize())]
}

// planLocked fills w with the step's parts: a decode token of every decoding request, then
// prefill chunks in admission order while they fit the step's token budget (the first always
// goes, so prefill progresses whatever the decode load).
func (e *Engine) planLocked(w *work) {
	w.dec, w.pre, w.chunks = w.dec[:0], w.pre[:0], w.chunks[:0]
	w.ended, w.errs, w.prefilled, w.generated = w.ended[:0], w.errs[:0], w.prefilled[:0], 0
	for _, r := range e.running {
		if r.decoding {
			w.dec = append(w.dec, r)
		}
	}
	used := len(w.dec)
	for _, r := range e.running {
		if r.decoding {
			continue
		}
		c := chunk(r)
		if len(w.pre) > 0 && used+len(c) > e.o.stepTokens {
			break
		}
		w.pre = append(w.pre, r)
		w.chunks = append(w.chunks, c)
		used += len(c)
	}
}

// step runs w's forward and hands every request its logits. It touches only the requests'
// sequences, which belong to the loop, so it runs without e.mu.
func (e *Engine) step(w *work) {
	if len(w.dec) > 0 {
		w.sessions, w.tokens = w.sessions[:0], w.tokens[:0]
		for _, r := range w.dec {
			w.sessions = append(w.sessions, r.seq.Session())
			w.tokens = append(w.tokens, r.seq.Last())
		}
		logits, err := e.b.Step(e.ctx, w.sessions, w.tokens)
		for i, r := range w.dec {
			if err == nil {
				var done bool
				done, err1 := r.seq.Accept(r.ctx, logits[i])
				w.generated++
				if done || err1 != nil {
					w.end(r, err1)
				}
				continue
			}
			w.end(r, err)
		}
	}
	for i, r := range w.pre {
		c := w.chunks[i]
		logits, err := r.seq.Session().Next(r.ctx, c)
		if err != nil {
			w.end(r, err)
			continue
		}
		r.fed += len(c)
		if r.fed < len(r.seq.Prompt()) {
			continue
		}
		w.prefilled = append(w.prefilled, r)
		done, err := r.seq.Prefilled(r.ctx, logits, time.Since(r.admitted))
		w.generated++
		if done || err != nil {
			w.end(r, err)
		} else {
			r.decoding = true
		}
	}
}

// end records that r finished in the step with err.
func (w *work) end(r *request, err error) {
	w.ended = append(w.ended, r)
	w.errs = append(w.errs, err)
}

// afterStepLocked takes the step's finished requests out of the running set, recharges
// requests whose prefill just ended at the estimate for their actual layers (Test mode's lazy
// layers are streaming now), records the step's figures and admits what now fits.
func (e *Engine) afterStepLocked(w *work, took time.Duration) {
	now := time.Now()
	for _, r := range w.prefilled {
		if !r.first {
			r.first = true
			e.st.ttft(now.Sub(r.submitted))
		}
	}
	keep := e.running[:0]
	for _, r := range e.running {
		if containsReq(w.ended, r) {
			e.reserved -= r.charge
			continue
		}
		keep = append(keep, r)
	}
	clear(e.running[len(keep):])
	e.running = keep
	var held int64
	for _, r := range e.running {
		s := r.seq.Session()
		if containsReq(w.prefilled, r) {
			if c := e.estimate(s, r.worst); c < r.charge {
				e.reserved -= r.charge - c
				r.charge = c
			}
		}
		b := s.Usage().Bytes
		if b > r.charge {
			e.st.overCharge++
		}
		held += b
	}
	e.st.step(took, w.generated, held)
	e.admitLocked()
}

func containsReq(rs []*request, r *request) bool {
	for _, q := range rs {
		if q == r {
			return true
		}
	}
	return false
}
