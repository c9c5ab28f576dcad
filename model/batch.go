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
// Step is Run with one token per session.
func (b *Batch) Step(ctx context.Context, sessions []*Session, tokens []int32) ([][]float32, error) {
	if len(sessions) != len(tokens) {
		return nil, fmt.Errorf("%w: %d sessions but %d tokens", ErrOption, len(sessions), len(tokens))
	}
	b.parts = b.parts[:0]
	for i, s := range sessions {
		if err := b.add(ctx, i, s, tokens[i:i+1]); err != nil {
			return nil, err
		}
	}
	return b.run(ctx)
}

// Run pushes every session's new tokens through the model in one forward step: tokens[i]
// (a decode token or a prefill chunk) is appended to sessions[i], the dense products read the
// weights once for all rows of all sessions, and each session's attention runs over its own
// cache. It returns each session's last-row logits ([vocab] each; the slices belong to the
// Batch and are overwritten by its next call).
//
// Each session's logits, cache, position and lazy layers come out bit for bit as the session
// alone would give them through Session.Next with the same tokens, whatever the other sessions
// of the step, their number, order or lengths (the kernels give every row the same result
// whatever the rows around it). Session.Next cuts a call into spans of the session's
// ChunkSize from the call's first token, and a span is the unit whose results Run reproduces:
// tokens[i] is one span, so it may hold at most ChunkSize tokens, and an engine reproducing
// Next(prompt) (and so Generate) gives the prompt in pieces of ChunkSize tokens, the last one
// shorter, then one token per step. The exception is Test mode's selecting prefill (the
// session's first forward), which Next runs as one span over the whole prompt: tokens[i] is
// then the whole prompt, of any length up to the context.
//
// A session may appear once per call; all must belong to the Batch's Model; every tokens[i]
// must be non-empty. An error names the session's index (and wraps ErrOption, ErrToken,
// ErrContext, ErrClosed or ctx's error); on such an error no session has advanced. ctx is
// checked before the step, which then runs to its end, except a lone session's Test-mode
// selecting prefill, which checks ctx between layers and when stopped restarts that session
// as Session.Next does. Run allocates nothing once its buffers have grown to the largest
// step (most rows, most sessions) seen.
func (b *Batch) Run(ctx context.Context, sessions []*Session, tokens [][]int32) ([][]float32, error) {
	if len(sessions) != len(tokens) {
		return nil, fmt.Errorf("%w: %d sessions but %d token lists", ErrOption, len(sessions), len(tokens))
	}
	b.parts = b.parts[:0]
	for i, s := range sessions {
		if err := b.add(ctx, i, s, tokens[i]); err != nil {
			return nil, err
		}
	}
	return b.run(ctx)
}

// add checks session i of a step and its tokens and appends them to the step's parts.
func (b *Batch) add(ctx context.Context, i int, s *Session, tokens []int32) error {
	if s == nil {
		return fmt.Errorf("%w: session %d is nil", ErrOption, i)
	}
	if s.m != b.m {
		return fmt.Errorf("%w: session %d belongs to another model", ErrOption, i)
	}
	for _, p := range b.parts {
		if p.s == s {
			return fmt.Errorf("%w: session %d appears twice in one step", ErrOption, i)
		}
	}
	if len(tokens) == 0 {
		return fmt.Errorf("%w: session %d has no tokens", ErrOption, i)
	}
	if err := s.check(ctx, tokens); err != nil {
		return wrapf(err, "batch session %d", i)
	}
	if n := s.spanLimit(); len(tokens) > n {
		return fmt.Errorf("%w: session %d: %d tokens exceed one span of %d (its chunk size; give them in several steps)", ErrOption, i, len(tokens), n)
	}
	b.parts = append(b.parts, part{s: s, tokens: tokens})
	return nil
}

// run runs the step over b.parts and returns each part's last-row logits.
func (b *Batch) run(ctx context.Context) ([][]float32, error) {
	if len(b.parts) == 0 {
		return nil, nil
	}
	if err := b.m.forward(ctx, b.parts, &b.buf, defaultChunk); err != nil {
		return nil, err
	}
	V := b.m.cfg.VocabSize
	b.out = b.out[:0]
	for i := range b.parts {
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
