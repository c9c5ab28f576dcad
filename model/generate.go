package model

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lighttransfer/lighttransfer-go/kvcache"
	"github.com/lighttransfer/lighttransfer-go/loader/tokenizer"
)

// ErrStop, returned by a WithStream callback, ends generation cleanly: Generate then returns
// the result with FinishCallback and a nil error.
var ErrStop = errors.New("model: stop requested")

// FinishReason says why generation ended.
type FinishReason string

// The reasons generation ends.
const (
	FinishLength   FinishReason = "length"   // the token budget (WithMaxTokens) was used up
	FinishEOS      FinishReason = "eos"      // the model produced an end-of-sequence token
	FinishStop     FinishReason = "stop"     // a stop string appeared in the text
	FinishCallback FinishReason = "callback" // the stream callback returned ErrStop
	FinishContext  FinishReason = "context"  // the session's context window is full
	FinishCanceled FinishReason = "canceled" // ctx was cancelled or timed out
)

// Token is one generated token as the stream callback sees it. When generation ends with text
// still held back (a partial stop-string match, an unfinished character), a last Token with
// ID -1 carries it.
type Token struct {
	Seq   int    // the sequence's index among GenerateBatch's prompts (0 otherwise)
	ID    int32  // the token id, or -1 for the final flush
	Index int    // 0 for the first generated token
	Text  string // text released with this token: whole UTF-8 characters, possibly empty
}

// Result is what a generation produced.
type Result struct {
	Text            string        // the generated text (prompt excluded), stop string excluded
	Tokens          []int32       // the generated token ids (EOS excluded)
	Finish          FinishReason  // why generation ended
	PromptTokens    int           // tokens in the prompt, BOS included
	GeneratedTokens int           // tokens generated, EOS included
	Prefill         time.Duration // time to process the prompt
	Decode          time.Duration // time spent generating after the prefill
	Lazy            []int         // the session's streaming layers at the end
	KV              kvcache.Usage // KV cache allocation at the end
}

// DecodeTokensPerSecond returns the decode speed (tokens after the first per second of Decode).
func (r Result) DecodeTokensPerSecond() float64 {
	if r.Decode <= 0 || r.GeneratedTokens < 2 {
		return 0
	}
	return float64(r.GeneratedTokens-1) / r.Decode.Seconds()
}

// GenerateOption configures Generate, GenerateTokens, Chat and GenerateBatch. A nil
// GenerateOption is ignored.
type GenerateOption func(*genOptions)

type genOptions struct {
	maxTokens int
	sampling  Sampling
	stops     []string
	stream    func(Token) error
	session   []SessionOption
	ignoreEOS bool
}

// DefaultMaxTokens is the generation budget when WithMaxTokens is not given.
const DefaultMaxTokens = 256

// WithMaxTokens sets the most tokens to generate (default DefaultMaxTokens; must be > 0).
func WithMaxTokens(n int) GenerateOption { return func(o *genOptions) { o.maxTokens = n } }

// WithSampling sets the sampling parameters (default: greedy).
func WithSampling(s Sampling) GenerateOption { return func(o *genOptions) { o.sampling = s } }

// WithStop ends generation when any of the (non-empty) strings appears in the generated text;
// the text is cut before it. Text that could be the start of a stop string is held back from
// the stream until it cannot.
func WithStop(stops ...string) GenerateOption {
	return func(o *genOptions) { o.stops = append(o.stops, stops...) }
}

// WithStream calls f for every generated token, in order, from the generating goroutine, with
// the text released so far. f returning ErrStop ends generation cleanly; any other error ends
// it and is returned.
func WithStream(f func(Token) error) GenerateOption { return func(o *genOptions) { o.stream = f } }

// WithSessionOptions passes attention-mode and context options to the generation's session.
func WithSessionOptions(opts ...SessionOption) GenerateOption {
	return func(o *genOptions) { o.session = append(o.session, opts...) }
}

// WithIgnoreEOS keeps generating past end-of-sequence tokens (for benchmarks).
func WithIgnoreEOS() GenerateOption { return func(o *genOptions) { o.ignoreEOS = true } }

// Generate encodes prompt with the model's tokenizer (adding BOS when the tokenizer does) and
// generates a continuation. An empty prompt generates from BOS alone; it is an error for a
// tokenizer that adds no BOS. On cancellation Generate returns what was generated so far with
// FinishCanceled together with ctx's error. Text that is not valid UTF-8 fails with an error
// wrapping tokenizer.ErrInvalidUTF8 that names the byte offset. After the Model's Close (also
// during the call) it returns an error wrapping ErrClosed.
func (m *Model) Generate(ctx context.Context, prompt string, opts ...GenerateOption) (Result, error) {
	if err := m.errIfClosed(); err != nil {
		return Result{}, err
	}
	if m.tok == nil {
		return Result{}, fmt.Errorf("%w: %s has no tokenizer.json", ErrNoTokenizer, m.dir)
	}
	ids, err := m.encodePrompt(prompt)
	if err != nil {
		return Result{}, err
	}
	return m.GenerateTokens(ctx, ids, opts...)
}

// encodePrompt encodes a prompt with the tokenizer, adding BOS when the tokenizer does.
func (m *Model) encodePrompt(prompt string) ([]int32, error) {
	ids, err := m.tok.Encode(prompt, true)
	if err != nil {
		return nil, fmt.Errorf("model: encoding prompt: %w", err)
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("%w: empty prompt and the tokenizer adds no BOS token", ErrOption)
	}
	return ids, nil
}

// Chat renders msgs with the checkpoint's chat template (adding the assistant's turn prompt)
// and generates the reply.
func (m *Model) Chat(ctx context.Context, msgs []tokenizer.Message, opts ...GenerateOption) (Result, error) {
	if err := m.errIfClosed(); err != nil {
		return Result{}, err
	}
	if m.tok == nil {
		return Result{}, fmt.Errorf("%w: %s has no tokenizer.json", ErrNoTokenizer, m.dir)
	}
	ids, err := m.chatTokens(msgs)
	if err != nil {
		return Result{}, err
	}
	return m.GenerateTokens(ctx, ids, opts...)
}

// GenerateTokens generates a continuation of prompt (token ids, BOS included if the model
// expects one). Text in the result and in stream callbacks needs the model's tokenizer; without
// one they are empty and only ids are reported.
func (m *Model) GenerateTokens(ctx context.Context, prompt []int32, opts ...GenerateOption) (Result, error) {
	o, err := genOpts(opts)
	if err != nil {
		return Result{}, err
	}
	g, err := m.newGeneration(o, prompt, 0)
	if err != nil {
		return Result{}, err
	}
	defer g.s.Close()
	done, err := g.start(ctx)
	for !done && err == nil {
		var logits []float32
		if logits, err = g.s.Next(ctx, g.last[:]); err == nil {
			done, err = g.accept(ctx, logits)
		}
	}
	return g.result(ctx, err)
}

// genOpts applies and validates generation options.
func genOpts(opts []GenerateOption) (*genOptions, error) {
	o := &genOptions{maxTokens: DefaultMaxTokens}
	for _, f := range opts {
		if f != nil {
			f(o)
		}
	}
	if o.maxTokens <= 0 {
		return nil, fmt.Errorf("%w: max tokens %d must be > 0", ErrOption, o.maxTokens)
	}
	if err := o.sampling.Validate(); err != nil {
		return nil, err
	}
	for i, s := range o.stops {
		if s == "" {
			return nil, fmt.Errorf("%w: stop string %d is empty", ErrOption, i)
		}
	}
	return o, nil
}

// generation is the state of one sequence being generated.
type generation struct {
	m      *Model
	s      *Session
	o      *genOptions
	seq    int // index in a batch
	prompt []int32
	res    Result
	smp    *sampler
	dec    *tokenizer.StreamDecoder
	hold   stopHolder
	last   [1]int32        // the token to feed next
	text   strings.Builder // text released so far (Result.Text at the end)
	t0     time.Time
}

func (m *Model) newGeneration(o *genOptions, prompt []int32, seq int) (*generation, error) {
	if len(prompt) == 0 {
		return nil, fmt.Errorf("%w: empty prompt", ErrOption)
	}
	s, err := m.NewSession(o.session...)
	if err != nil {
		return nil, err
	}
	g := &generation{m: m, s: s, o: o, seq: seq, prompt: prompt, res: Result{PromptTokens: len(prompt)}}
	g.hold.stops = o.stops
	g.smp = newSampler(o.sampling, m.cfg.VocabSize)
	for _, id := range prompt {
		g.smp.observe(id)
	}
	return g, nil
}

// start prefills the prompt and accepts the first generated token.
func (g *generation) start(ctx context.Context) (done bool, err error) {
	t := time.Now()
	logits, err := g.s.Next(ctx, g.prompt)
	if err != nil {
		g.res.Prefill = time.Since(t)
		return true, err
	}
	return g.prefilled(ctx, logits, time.Since(t))
}

// prefilled takes the logits of the prompt's last token once the prompt is in the session
// (prefill is the time that took): it primes the decoder with the prompt and accepts the first
// generated token.
func (g *generation) prefilled(ctx context.Context, logits []float32, prefill time.Duration) (done bool, err error) {
	g.res.Prefill = prefill
	if tok := g.m.tok; tok != nil {
		// Prime the decoder with the prompt so the first generated token is decoded in context
		// (a sentencepiece "▁word" keeps its space after the prompt).
		g.dec = tok.NewDecoder(true)
		for _, id := range g.prompt {
			if _, err := g.dec.Add(id); err != nil {
				return true, fmt.Errorf("model: decoding prompt token %d: %w", id, err)
			}
		}
	}
	g.t0 = time.Now()
	return g.accept(ctx, logits)
}

// accept samples the next token from logits, reports it and decides whether generation ends.
// When it does not, g.last holds the token to feed next.
func (g *generation) accept(ctx context.Context, logits []float32) (done bool, err error) {
	o := g.o
	id := g.smp.next(logits)
	g.smp.observe(id)
	i := g.res.GeneratedTokens
	g.res.GeneratedTokens++
	if !o.ignoreEOS && slices.Contains(g.m.eos, id) {
		g.res.Finish = FinishEOS
		return true, g.finish()
	}
	g.res.Tokens = append(g.res.Tokens, id)
	piece, stopped, err := g.release(id)
	if err != nil {
		return true, err
	}
	if err := g.emit(id, i, piece); err != nil {
		if !errors.Is(err, ErrStop) {
			return true, err
		}
		if !stopped {
			g.res.Finish = FinishCallback
			return true, g.finish()
		}
	}
	switch {
	case stopped:
		g.res.Finish = FinishStop
	case g.res.GeneratedTokens >= o.maxTokens:
		g.res.Finish = FinishLength
	case g.s.Pos() >= g.s.MaxContext():
		g.res.Finish = FinishContext
	default:
		g.last[0] = id
		return false, ctx.Err()
	}
	if stopped {
		return true, nil
	}
	return true, g.finish()
}

// result completes the Result after generation ended with err.
func (g *generation) result(ctx context.Context, err error) (Result, error) {
	if !g.t0.IsZero() {
		g.res.Decode = time.Since(g.t0)
	}
	if err != nil && ctx.Err() != nil {
		g.res.Finish = FinishCanceled
		if ferr := g.finish(); ferr != nil && !errors.Is(ferr, ErrStop) {
			err = errors.Join(err, ferr)
		}
	}
	g.res.Text = g.text.String()
	g.res.Lazy = g.s.Lazy()
	g.res.KV = g.s.Usage()
	return g.res, err
}

// release decodes id and passes the text through the stop-string holder.
func (g *generation) release(id int32) (string, bool, error) {
	if g.dec == nil {
		return "", false, nil
	}
	piece, err := g.dec.Add(id)
	if err != nil {
		return "", false, fmt.Errorf("model: decoding token %d: %w", id, err)
	}
	out, stopped := g.hold.push(piece)
	g.text.WriteString(out)
	return out, stopped, nil
}

// emit calls the stream callback, if any.
func (g *generation) emit(id int32, i int, text string) error {
	if g.o.stream == nil {
		return nil
	}
	return g.o.stream(Token{Seq: g.seq, ID: id, Index: i, Text: text})
}

// finish releases text still held back by the decoder and the stop holder.
func (g *generation) finish() error {
	if g.dec == nil {
		return nil
	}
	out, stopped := g.hold.push(g.dec.Flush())
	if !stopped {
		out += g.hold.flush()
	} else {
		g.res.Finish = FinishStop
	}
	g.text.WriteString(out)
	if out != "" && g.o.stream != nil {
		if err := g.o.stream(Token{Seq: g.seq, ID: -1, Index: g.res.GeneratedTokens, Text: out}); err != nil && !errors.Is(err, ErrStop) {
			return err
		}
	}
	return nil
}
