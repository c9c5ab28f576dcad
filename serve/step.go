package serve

import (
	"time"

	"github.com/lighttransfer/lighttransfer-go/model"
)

// work is one step: what the loop planned under the lock and what the forward produced.
type work struct {
	dec      []*request       // decoding requests, one token each
	pre      []*request       // requests getting a prefill chunk
	chunks   [][]int32        // pre[i]'s chunk
	sessions []*model.Session // the Run's sessions: dec's, then pre's
	tokens   []int32          // dec's tokens
	parts    [][]int32        // the Run's token lists

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

// step runs w's forward, one Batch.Run over every part, and hands every request its logits.
// It touches only the requests' sequences, which belong to the loop, so it runs without e.mu.
// A step of one part runs under that request's context, so a lone Test-mode selecting prefill
// stops between layers when the request is cancelled.
func (e *Engine) step(w *work) {
	w.sessions, w.tokens, w.parts = w.sessions[:0], w.tokens[:0], w.parts[:0]
	for _, r := range w.dec {
		w.tokens = append(w.tokens, r.seq.Last())
	}
	for i, r := range w.dec {
		w.sessions = append(w.sessions, r.seq.Session())
		w.parts = append(w.parts, w.tokens[i:i+1])
	}
	for i, r := range w.pre {
		w.sessions = append(w.sessions, r.seq.Session())
		w.parts = append(w.parts, w.chunks[i])
	}
	ctx := e.ctx
	switch {
	case len(w.dec) == 1 && len(w.pre) == 0:
		ctx = w.dec[0].ctx
	case len(w.dec) == 0 && len(w.pre) == 1:
		ctx = w.pre[0].ctx
	}
	logits, err := e.b.Run(ctx, w.sessions, w.parts)
	if err != nil {
		for _, r := range w.dec {
			w.end(r, err)
		}
		for _, r := range w.pre {
			w.end(r, err)
		}
		return
	}
	for i, r := range w.dec {
		done, err := r.seq.Accept(r.ctx, logits[i])
		w.generated++
		if done || err != nil {
			w.end(r, err)
		}
	}
	for i, r := range w.pre {
		r.fed += len(w.chunks[i])
		if r.fed < len(r.seq.Prompt()) {
			continue
		}
		w.prefilled = append(w.prefilled, r)
		done, err := r.seq.Prefilled(r.ctx, logits[len(w.dec)+i], time.Since(r.admitted))
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
	e.st.stepStart = time.Time{}
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
