package model

import (
	"context"
	"errors"
	"fmt"
)

// Batch decodes several sessions of one Model together: each Step pushes one token per
// session through the model in a single forward, so the weights are read once per step for
// all of them while every session keeps its own position, cache and lazy layers. A Batch owns
// the step's activation buffers; it is not safe for concurrent use.
type Batch struct {
	m     *Model
	buf   buffers
	parts []part
	out   [][]float32
}

// NewBatch returns an empty Batch for m's sessions.
func (m *Model) NewBatch() *Batch { return &Batch{m: m} }

// Step appends tokens[i] to sessions[i] for every i and returns each session's next-token
// logits ([vocab] each). The slices belong to the Batch and are overwritten by the next Step.
// A session may appear once per step; all must belong to the Batch's Model; a nil session is
// an error naming its index. On an error no session has advanced: ctx is checked before the
// step, which then runs to its end (a session's first token in Test mode may instead stop
// between layers, which leaves that session as NewSession made it).
// After the Model's Close, Step returns an error wrapping ErrClosed.
func (b *Batch) Step(ctx context.Context, sessions []*Session, tokens []int32) ([][]float32, error) {
	if len(sessions) != len(tokens) {
		return nil, fmt.Errorf("%w: %d sessions but %d tokens", ErrOption, len(sessions), len(tokens))
	}
	if len(sessions) == 0 {
		return nil, nil
	}
	b.parts = b.parts[:0]
	for i, s := range sessions {
		if s == nil {
			return nil, fmt.Errorf("%w: session %d is nil", ErrOption, i)
		}
		if s.m != b.m {
			return nil, fmt.Errorf("%w: session %d belongs to another model", ErrOption, i)
		}
		for _, p := range b.parts {
			if p.s == s {
				return nil, fmt.Errorf("%w: session %d appears twice in one step", ErrOption, i)
			}
		}
		if err := s.check(ctx, tokens[i:i+1]); err != nil {
			return nil, wrapf(err, "batch session %d", i)
		}
		b.parts = append(b.parts, part{s: s, tokens: tokens[i : i+1]})
	}
	if err := b.m.forward(ctx, b.parts, &b.buf, defaultChunk); err != nil {
		return nil, err
	}
	V := b.m.cfg.VocabSize
	b.out = b.out[:0]
	for i := range sessions {
		b.out = append(b.out, b.buf.lastLogits[i*V:(i+1)*V])
	}
	return b.out, nil
}

// GenerateBatch generates a continuation of every prompt, decoding all unfinished sequences
// together one token per step (see Batch). Each sequence has its own session (with the
// options' attention mode) and ends on its own; the stream callback's Token.Seq says which
// sequence a token belongs to. Prompts are prefilled one after another. On cancellation every
// result holds what was generated so far, along with ctx's error.
func (m *Model) GenerateBatch(ctx context.Context, prompts []string, opts ...GenerateOption) ([]Result, error) {
	if err := m.errIfClosed(); err != nil {
		return nil, err
	}
	if m.tok == nil {
		return nil, fmt.Errorf("%w: %s has no tokenizer.json", ErrNoTokenizer, m.dir)
	}
	ids := make([][]int32, len(prompts))
	for i, p := range prompts {
		t, err := m.encodePrompt(p)
		if err != nil {
			return nil, wrapf(err, "prompt %d", i)
		}
		ids[i] = t
	}
	return m.GenerateTokensBatch(ctx, ids, opts...)
}

// GenerateTokensBatch is GenerateBatch for prompts given as token ids.
func (m *Model) GenerateTokensBatch(ctx context.Context, prompts [][]int32, opts ...GenerateOption) ([]Result, error) {
	if err := m.errIfClosed(); err != nil {
		return nil, err
	}
	o, err := genOpts(opts)
	if err != nil {
		return nil, err
	}
	gens := make([]*generation, len(prompts))
	for i, p := range prompts {
		if gens[i], err = m.newGeneration(o, p, i); err != nil {
			return nil, wrapf(err, "prompt %d", i)
		}
		defer gens[i].s.Close()
	}
	var active []*generation
	for _, g := range gens {
		done, gerr := g.start(ctx)
		if gerr != nil {
			err = gerr
			break
		}
		if !done {
			active = append(active, g)
		}
	}
	b := m.NewBatch()
	var sessions []*Session
	var tokens []int32
	for err == nil && len(active) > 0 {
		sessions, tokens = sessions[:0], tokens[:0]
		for _, g := range active {
			sessions = append(sessions, g.s)
			tokens = append(tokens, g.last[0])
		}
		var logits [][]float32
		if logits, err = b.Step(ctx, sessions, tokens); err != nil {
			break
		}
		next := active[:0]
		for i, g := range active {
			done, gerr := g.accept(ctx, logits[i])
			if gerr != nil {
				err = gerr
			}
			if !done {
				next = append(next, g)
			}
		}
		active = next
	}
	res := make([]Result, len(gens))
	var errs []error
	for i, g := range gens {
		r, gerr := g.result(ctx, err)
		res[i] = r
		if gerr != nil && !errors.Is(gerr, err) {
			errs = append(errs, gerr)
		}
	}
	return res, errors.Join(append([]error{err}, errs...)...)
}
