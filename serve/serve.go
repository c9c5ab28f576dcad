// Package serve runs many generations of one model at once: continuous batching under a KV
// memory budget.
//
// An Engine owns one loop. Any number of goroutines Submit requests; each waits in a FIFO
// queue until its worst-case KV cache (its session's policies and element types at prompt +
// max tokens; Test mode counts as full attention until its prefill has chosen the lazy layers)
// fits the budget that the running sequences leave, then runs. Every step of the loop is one
// batched forward holding a decode token of every running sequence plus prefill chunks of newly
// admitted ones, up to a per-step token budget, so the weights are read once per step for all
// of them and long prompts do not stall running decodes. Prefill chunks fall where
// Session.Next puts them (ChunkSize tokens from the prompt's start; Test mode's selecting
// prefill in one piece), and each sequence samples with its own seeded sampler, so a request's
// result is the one a lone model.GenerateTokens of it would give, given batch-invariant kernels.
//
// When Test mode turns layers into streaming ones at the end of a prefill, the sequence's
// charge drops to the estimate for its actual layers and the freed bytes admit more requests.
// A request whose context is cancelled leaves at the next step and its bytes are freed then.
package serve

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/lighttransfer/lighttransfer-go/kvcache"
	"github.com/lighttransfer/lighttransfer-go/loader/tokenizer"
	"github.com/lighttransfer/lighttransfer-go/model"
)

// Errors of package serve; test for them with errors.Is. Invalid requests return errors
// wrapping model.ErrOption (and model.ErrContext for a prompt plus max tokens beyond the
// session's context).
var (
	// ErrOverloaded reports a full queue: Submit fails at once.
	ErrOverloaded = errors.New("serve: queue full")
	// ErrClosed reports a Submit after Shutdown or Close, or a request cancelled by Close.
	ErrClosed = errors.New("serve: engine closed")
	// ErrTooLarge reports a request whose worst-case KV cache exceeds the whole budget, so it
	// could never be admitted.
	ErrTooLarge = errors.New("serve: request exceeds the KV budget")
)

// Defaults of the Engine's options.
const (
	DefaultMaxBatch   = 16
	DefaultQueue      = 256
	DefaultStepTokens = 512
)

// Option configures New. A nil Option is ignored.
type Option func(*options)

type options struct {
	budget     int64
	maxBatch   int
	queue      int
	stepTokens int
	stepLock   sync.Locker
}

// WithKVBudget sets the most KV cache bytes the running sequences may hold together, counted
// as each one's worst case (0, the default: unlimited; negative is an error).
func WithKVBudget(bytes int64) Option { return func(o *options) { o.budget = bytes } }

// WithMaxBatch sets the most running sequences (admitted, prefilling or decoding; default
// DefaultMaxBatch, at least 1).
func WithMaxBatch(n int) Option { return func(o *options) { o.maxBatch = n } }

// WithQueue sets the most requests waiting for admission (default DefaultQueue, at least 0);
// past it Submit fails with ErrOverloaded.
func WithQueue(n int) Option { return func(o *options) { o.queue = n } }

// WithStepTokens sets the per-step token budget: decode rows plus prefill chunks (default
// DefaultStepTokens, at least 1). A step always holds every running decode and, when some
// prompt is waiting to be prefilled, at least one prefill chunk, whatever the budget.
func WithStepTokens(n int) Option { return func(o *options) { o.stepTokens = n } }

// WithStepLock makes the loop hold l during every forward step. Engines sharing one lock
// take turns, which lets a benchmark compare engines on one machine under the same ambient
// load (Stats.Busy excludes the time spent waiting for l). Default: no lock.
func WithStepLock(l sync.Locker) Option { return func(o *options) { o.stepLock = l } }

// Request is one generation request.
type Request struct {
	// Prompt is plain text, encoded with the model's tokenizer (BOS added when the tokenizer
	// adds one). At most one of Prompt, Messages and Tokens may be set; none is an empty
	// Prompt (BOS alone).
	Prompt string
	// Messages is a chat, rendered with the checkpoint's chat template as model.Chat does.
	Messages []tokenizer.Message
	// Tokens is the prompt as token ids (BOS included if the model expects one).
	Tokens []int32
	// MaxTokens is the most tokens to generate (0: model.DefaultMaxTokens).
	MaxTokens int
	// Sampling is the sampling parameters (zero value: greedy), as model.WithSampling.
	Sampling model.Sampling
	// Stop ends generation when one of these strings appears, as model.WithStop.
	Stop []string
	// IgnoreEOS keeps generating past end-of-sequence tokens.
	IgnoreEOS bool
	// Session holds the session options: attention mode (model.TestMode, model.FixedMode,
	// model.FullAttention), KV element types, context and chunk size.
	Session []model.SessionOption
	// Stream, when non-nil, is called from the engine's loop for every generated piece in
	// order, as model.WithStream. Returning model.ErrStop ends the request normally, any other
	// error ends it and Submit returns that error. A slow callback slows every running request.
	Stream func(model.Token) error
}

// Engine batches the requests submitted to it over one model. Its methods are safe for
// concurrent use.
type Engine struct {
	m   *model.Model
	o   options
	b   *model.Batch
	ctx context.Context // cancelled by Close: stops the step in flight
	end context.CancelFunc

	wake     chan struct{} // a request arrived or the engine closes
	loopDone chan struct{}
	once     sync.Once

	mu       sync.Mutex
	closed   bool
	waiting  []*request
	running  []*request // admitted, in admission order
	reserved int64
	st       statsState
}

// request is one submitted request's state. seq and the prefill fields belong to the loop
// once the request is admitted.
type request struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	seq    *model.Sequence
	worst  int   // prompt + max tokens: the tokens the charge is estimated at
	charge int64 // bytes reserved against the budget
	done   chan struct{}
	res    model.Result
	err    error

	submitted, admitted time.Time
	first               bool // the first token has been produced
	fed                 int  // prompt tokens in the session
	decoding            bool // the prompt is in and Last is the token to feed next
}

// New returns an Engine over m and starts its loop. Bad options are errors wrapping
// model.ErrOption. Call Shutdown or Close to stop it; m must stay open until then.
func New(m *model.Model, opts ...Option) (*Engine, error) {
	if m == nil {
		return nil, fmt.Errorf("%w: serve: nil model", model.ErrOption)
	}
	o := options{maxBatch: DefaultMaxBatch, queue: DefaultQueue, stepTokens: DefaultStepTokens}
	for _, f := range opts {
		if f != nil {
			f(&o)
		}
	}
	switch {
	case o.budget < 0:
		return nil, fmt.Errorf("%w: serve: KV budget %d must be >= 0", model.ErrOption, o.budget)
	case o.maxBatch < 1:
		return nil, fmt.Errorf("%w: serve: max batch %d must be >= 1", model.ErrOption, o.maxBatch)
	case o.queue < 0:
		return nil, fmt.Errorf("%w: serve: queue %d must be >= 0", model.ErrOption, o.queue)
	case o.stepTokens < 1:
		return nil, fmt.Errorf("%w: serve: step tokens %d must be >= 1", model.ErrOption, o.stepTokens)
	}
	e := &Engine{m: m, o: o, b: m.NewBatch(), wake: make(chan struct{}, 1), loopDone: make(chan struct{})}
	e.ctx, e.end = context.WithCancel(context.Background())
	e.st.init()
	go e.loop()
	return e, nil
}

// Submit runs req and blocks until it finishes, returning what model.GenerateTokens would
// return for it: the Result (finish reason, token counts, text) and the stream callback's error
// or ctx's. A request cancelled through ctx returns what it generated so far with
// model.FinishCanceled and ctx's error; one cancelled by Close, with an error wrapping
// ErrClosed. It fails at once with ErrOverloaded when the queue is full, ErrTooLarge when the
// request's worst-case KV exceeds the whole budget, ErrClosed after Shutdown or Close, an error
// wrapping model.ErrContext when prompt + max tokens exceed the session's context, one wrapping
// model.ErrToken for a token outside the vocabulary, and one wrapping model.ErrOption for an
// invalid request.
func (e *Engine) Submit(ctx context.Context, req Request) (model.Result, error) {
	if e.isClosed() {
		return model.Result{}, ErrClosed
	}
	r, err := e.newRequest(ctx, req)
	if err != nil {
		return model.Result{}, err
	}
	if e.o.budget > 0 && r.charge > e.o.budget {
		r.seq.Close()
		r.cancel(nil)
		e.mu.Lock()
		e.st.rejected++
		e.mu.Unlock()
		return model.Result{}, fmt.Errorf("%w: %d tokens need up to %d KV bytes, the budget is %d", ErrTooLarge, r.worst, r.charge, e.o.budget)
	}
	e.mu.Lock()
	switch {
	case e.closed:
		e.mu.Unlock()
		r.seq.Close()
		r.cancel(nil)
		return model.Result{}, ErrClosed
	case len(e.waiting) >= e.o.queue && !e.fitsLocked(r):
		e.st.rejected++
		e.mu.Unlock()
		r.seq.Close()
		r.cancel(nil)
		return model.Result{}, fmt.Errorf("%w: %d requests waiting", ErrOverloaded, len(e.waiting))
	}
	e.waiting = append(e.waiting, r)
	e.admitLocked()
	e.mu.Unlock()
	e.signal()

	select {
	case <-r.done:
	case <-r.ctx.Done():
		e.mu.Lock()
		i := slices.Index(e.waiting, r)
		if i >= 0 {
			e.waiting = slices.Delete(e.waiting, i, i+1)
		}
		e.mu.Unlock()
		if i >= 0 {
			e.finish(r, context.Cause(r.ctx))
		}
		<-r.done
	}
	return r.res, r.err
}

// newRequest validates req and builds its sequence.
func (e *Engine) newRequest(ctx context.Context, req Request) (*request, error) {
	set := 0
	for _, b := range []bool{req.Prompt != "", req.Messages != nil, req.Tokens != nil} {
		if b {
			set++
		}
	}
	if set > 1 {
		return nil, fmt.Errorf("%w: serve: set one of Prompt, Messages and Tokens", model.ErrOption)
	}
	var ids []int32
	var err error
	switch {
	case req.Tokens != nil:
		ids = req.Tokens
	case req.Messages != nil:
		ids, err = e.m.ChatTokens(req.Messages)
	default:
		ids, err = e.m.PromptTokens(req.Prompt)
	}
	if err != nil {
		return nil, err
	}
	V := e.m.Config().VocabSize
	for i, t := range ids {
		if t < 0 || int(t) >= V {
			return nil, fmt.Errorf("%w: serve: token %d at index %d is outside the vocabulary [0, %d)", model.ErrToken, t, i, V)
		}
	}
	maxTokens := req.MaxTokens
	if maxTokens == 0 {
		maxTokens = model.DefaultMaxTokens
	}
	opts := []model.GenerateOption{model.WithMaxTokens(maxTokens), model.WithSampling(req.Sampling),
		model.WithStop(req.Stop...), model.WithSessionOptions(req.Session...)}
	if req.IgnoreEOS {
		opts = append(opts, model.WithIgnoreEOS())
	}
	if req.Stream != nil {
		opts = append(opts, model.WithStream(req.Stream))
	}
	seq, err := e.m.NewSequence(ids, opts...)
	if err != nil {
		return nil, err
	}
	s := seq.Session()
	worst := len(ids) + maxTokens
	if worst > s.MaxContext() {
		seq.Close()
		return nil, fmt.Errorf("%w: serve: %d prompt tokens + %d max tokens exceed the context of %d", model.ErrContext, len(ids), maxTokens, s.MaxContext())
	}
	charge, err := e.m.EstimateKV(worst, req.Session...)
	if err != nil {
		seq.Close()
		return nil, err
	}
	r := &request{seq: seq, worst: worst, charge: charge, done: make(chan struct{}), submitted: time.Now()}
	r.ctx, r.cancel = context.WithCancelCause(ctx)
	return r, nil
}

// estimate returns the KV bytes session s's cache would hold with tokens tokens in every layer
// under its layers' current policies and types: after a Test-mode prefill, the worst case of
// the layers it kept full and made streaming.
func (e *Engine) estimate(s *model.Session, tokens int) int64 {
	cfg := e.m.Config()
	shape := kvcache.Shape{KVHeads: cfg.NumKVHeads, HeadDim: cfg.HeadDim}
	var n int64
	for _, l := range s.Usage().Layers {
		n += kvcache.Estimate(shape, []kvcache.Policy{l.Policy}, tokens, kvcache.WithType(l.Type, l.Type))
	}
	return n
}

// fitsLocked reports whether r could be admitted now, ahead of no one.
func (e *Engine) fitsLocked(r *request) bool {
	return len(e.waiting) == 0 && len(e.running) < e.o.maxBatch &&
		(e.o.budget == 0 || e.reserved+r.charge <= e.o.budget)
}

// admitLocked admits waiting requests in FIFO order while the head fits.
func (e *Engine) admitLocked() {
	for len(e.waiting) > 0 && len(e.running) < e.o.maxBatch {
		r := e.waiting[0]
		if e.o.budget > 0 && e.reserved+r.charge > e.o.budget {
			return
		}
		e.waiting = e.waiting[1:]
		e.running = append(e.running, r)
		e.reserved += r.charge
		r.admitted = time.Now()
		e.st.peakReserved = max(e.st.peakReserved, e.reserved)
	}
}

// finish completes r, which is no longer queued or running, with err and wakes its Submit. It
// may call r's stream callback (for text held back), so it runs without e.mu.
func (e *Engine) finish(r *request, err error) {
	if err != nil && r.ctx.Err() != nil {
		err = context.Cause(r.ctx)
	}
	r.res, r.err = r.seq.Result(r.ctx, err)
	r.seq.Close()
	e.mu.Lock()
	switch {
	case r.ctx.Err() != nil && err != nil:
		e.st.canceled++
	case r.err != nil:
		e.st.failed++
	default:
		e.st.completed++
	}
	e.mu.Unlock()
	r.cancel(nil)
	close(r.done)
}

// signal wakes the loop.
func (e *Engine) signal() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *Engine) isClosed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closed
}

// Shutdown stops admitting requests (a later Submit fails with ErrClosed) and waits until the
// admitted and queued ones have finished. When ctx ends first it cancels them as Close does and
// returns ctx's error.
func (e *Engine) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	e.signal()
	select {
	case <-e.loopDone:
		return nil
	case <-ctx.Done():
		e.Close()
		return ctx.Err()
	}
}

// Close cancels every queued and running request now (their Submit returns an error wrapping
// ErrClosed), waits for the step in flight to end and stops the loop. Later Submits fail with
// ErrClosed. Closing twice is harmless.
func (e *Engine) Close() error {
	e.mu.Lock()
	e.closed = true
	queued := e.waiting
	e.waiting = nil
	for _, r := range e.running {
		r.cancel(ErrClosed)
	}
	e.mu.Unlock()
	for _, r := range queued {
		r.cancel(ErrClosed)
		e.finish(r, ErrClosed)
	}
	e.once.Do(e.end)
	e.signal()
	<-e.loopDone
	return nil
}

// loop runs steps until the engine is closed and has no requests left.
func (e *Engine) loop() {
	defer close(e.loopDone)
	var w work
	var gone []*request
	for {
		e.mu.Lock()
		gone = e.reapLocked(gone[:0])
		e.admitLocked()
		idle := len(e.running) == 0
		closed := idle && e.closed && len(e.waiting) == 0
		if !idle {
			e.planLocked(&w)
		}
		e.mu.Unlock()
		for _, r := range gone {
			e.finish(r, context.Cause(r.ctx))
		}
		if closed {
			return
		}
		if idle {
			<-e.wake
			continue
		}

		if l := e.o.stepLock; l != nil {
			l.Lock()
		}
		t := time.Now()
		e.mu.Lock()
		e.st.stepStart = t
		e.mu.Unlock()
		e.step(&w)
		took := time.Since(t)
		if l := e.o.stepLock; l != nil {
			l.Unlock()
		}

		e.mu.Lock()
		e.afterStepLocked(&w, took)
		e.mu.Unlock()
		for i, r := range w.ended {
			e.finish(r, w.errs[i])
		}
	}
}

// reapLocked removes the running requests whose context is done, frees their bytes and
// appends them to gone.
func (e *Engine) reapLocked(gone []*request) []*request {
	keep := e.running[:0]
	for _, r := range e.running {
		if r.ctx.Err() != nil {
			e.reserved -= r.charge
			gone = append(gone, r)
			continue
		}
		keep = append(keep, r)
	}
	clear(e.running[len(keep):])
	e.running = keep
	return gone
}
