package model

import (
	"context"
	"fmt"
	"time"

	"github.com/lighttransfer/lighttransfer-go/loader/tokenizer"
)

// Sequence is one generation driven step by step from outside: a scheduler that batches many
// generations (such as package serve) feeds each sequence's Session itself, prompt first and
// then Last() after every accepted token, and hands the sequence the logits it got. The
// sequence applies Generate's rules to them (sampling with its own seeded sampler, EOS, stop
// strings, the stream callback, the token budget, the context), so when the logits are those a
// lone Session.Next would give, its Result is the Result of GenerateTokens with the same
// prompt and options.
//
// The usual cycle:
//
//	q, _ := m.NewSequence(prompt, opts...)
//	logits, err := q.Session().Next(ctx, q.Prompt()) // or in chunks, or through a Batch
//	done, err := q.Prefilled(ctx, logits, prefillTime)
//	for !done && err == nil {
//		logits, err = q.Session().Next(ctx, []int32{q.Last()})
//		if err == nil { done, err = q.Accept(ctx, logits) }
//	}
//	res, err := q.Result(ctx, err)
//	q.Close()
//
// A Sequence is not safe for concurrent use.
type Sequence struct{ g *generation }

// NewSequence validates opts as GenerateTokens does and returns a sequence over a new Session
// (made with the options' session options) that has not processed prompt yet. An empty prompt,
// bad options or bad session options are errors wrapping ErrOption.
func (m *Model) NewSequence(prompt []int32, opts ...GenerateOption) (*Sequence, error) {
	if err := m.errIfClosed(); err != nil {
		return nil, err
	}
	o, err := genOpts(opts)
	if err != nil {
		return nil, err
	}
	g, err := m.newGeneration(o, prompt, 0)
	if err != nil {
		return nil, err
	}
	return &Sequence{g: g}, nil
}

// Session returns the sequence's session, which the caller feeds.
func (q *Sequence) Session() *Session { return q.g.s }

// Prompt returns the prompt's token ids (the slice is the sequence's; do not modify it).
func (q *Sequence) Prompt() []int32 { return q.g.prompt }

// MaxTokens returns the generation budget (WithMaxTokens, default DefaultMaxTokens).
func (q *Sequence) MaxTokens() int { return q.g.o.maxTokens }

// Generated returns the number of tokens accepted so far, EOS included.
func (q *Sequence) Generated() int { return q.g.res.GeneratedTokens }

// Prefilled takes the logits of the prompt's last token once the whole prompt is in the
// session, and the time the prefill took (Result.Prefill). It primes the text decoder with the
// prompt and accepts the first generated token as Accept does.
func (q *Sequence) Prefilled(ctx context.Context, logits []float32, prefill time.Duration) (done bool, err error) {
	return q.g.prefilled(ctx, logits, prefill)
}

// Accept samples the next token from logits (the [vocab] logits of the token last fed),
// releases its text to the stream callback and reports whether generation has ended. When it
// has not, Last is the token to feed next. err is the stream callback's error (ErrStop ends
// generation cleanly with a nil error), a decoding error, or ctx's error when ctx is done.
func (q *Sequence) Accept(ctx context.Context, logits []float32) (done bool, err error) {
	return q.g.accept(ctx, logits)
}

// Last returns the token to feed next (valid after Prefilled or Accept returned done false).
func (q *Sequence) Last() int32 { return q.g.last[0] }

// Result completes and returns the sequence's Result after generation ended with err (nil
// when Prefilled or Accept said done): with ctx done and err non-nil the finish reason is
// FinishCanceled, text still held back is released, and err is returned as given.
func (q *Sequence) Result(ctx context.Context, err error) (Result, error) {
	return q.g.result(ctx, err)
}

// Close closes the sequence's session. Closing twice is harmless.
func (q *Sequence) Close() { q.g.s.Close() }

// PromptTokens encodes prompt with the model's tokenizer, adding BOS when the tokenizer does,
// as Generate does. An empty prompt with a tokenizer that adds no BOS is an error wrapping
// ErrOption; a model without a tokenizer, one wrapping ErrNoTokenizer.
func (m *Model) PromptTokens(prompt string) ([]int32, error) {
	if m.tok == nil {
		return nil, fmt.Errorf("%w: %s has no tokenizer.json", ErrNoTokenizer, m.dir)
	}
	return m.encodePrompt(prompt)
}

// ChatTokens renders msgs with the checkpoint's chat template (adding the assistant's turn
// prompt) and encodes the text, as Chat does.
func (m *Model) ChatTokens(msgs []tokenizer.Message) ([]int32, error) {
	if m.tok == nil {
		return nil, fmt.Errorf("%w: %s has no tokenizer.json", ErrNoTokenizer, m.dir)
	}
	return m.chatTokens(msgs)
}

// chatTokens is ChatTokens for a model known to have a tokenizer.
func (m *Model) chatTokens(msgs []tokenizer.Message) ([]int32, error) {
	text, err := m.tok.ApplyChatTemplate(msgs, true)
	if err != nil {
		return nil, fmt.Errorf("model: chat template: %w", err)
	}
	ids, err := m.tok.Encode(text, false)
	if err != nil {
		return nil, fmt.Errorf("model: encoding chat: %w", err)
	}
	return ids, nil
}
