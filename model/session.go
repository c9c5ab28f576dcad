package model

import (
	"context"
	"fmt"
	"slices"

	"github.com/lighttransfer/lighttransfer-go/kvcache"
	"github.com/lighttransfer/lighttransfer-go/layerselect"
	"gorgonia.org/tensor"
)

const defaultChunk = 512

// Session is one sequence being processed by a Model: its absolute position, its per-layer
// KV cache, its lazy-layer selection and its activation buffers. The Session owns that state:
// a forward step begins and ends through its methods (beginStep, layer, appendKV, observe,
// endStep, interrupt), so a batch or a scheduler drives many sessions without reaching inside.
// Which layers are lazy is kept in one place, the cache: a layer is lazy when its cache layer
// is streaming. A Session is not safe for concurrent use; give each goroutine its own (they
// may share the Model).
type Session struct {
	m      *Model
	mode   Mode
	sink   int
	window int
	last   int
	keep   float64
	maxCtx int
	chunk  int
	kvFull kvcache.Type // element type of full layers (Test mode: of every layer)
	kvStr  kvcache.Type // element type of layers streaming from the start

	cache    *kvcache.Cache
	pos      int
	selected bool // Test mode: the selecting prefill has run
	online   *layerselect.Online
	ratios   []float64
	peakKV   int64 // most KV bytes held at any point
	err      error // set by Close or a failed cache operation; the session is then unusable

	buf   buffers
	parts [1]part // the single part of this session's own steps
}

// NewSession starts a sequence at position 0. Without a mode option the session uses full
// attention, or fixed mode when the checkpoint's config declares lazy layers. Nil options are
// ignored; two mode options (FullAttention, TestMode, FixedMode, WithPlan) or a stream option
// that the mode does not use are an error wrapping ErrOption.
func (m *Model) NewSession(opts ...SessionOption) (*Session, error) {
	if err := m.errIfClosed(); err != nil {
		return nil, err
	}
	s, policies, err := m.configure(opts)
	if err != nil {
		return nil, err
	}
	c, err := m.be.newCache(policies, s.kvFull, s.kvStr)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrOption, err)
	}
	s.cache = c
	return s, nil
}

// configure returns a session for opts without its cache, and the cache layers' policies
// (NewSession's checks; errors wrap ErrOption).
func (m *Model) configure(opts []SessionOption) (*Session, []kvcache.Policy, error) {
	var o sessionOptions
	for _, f := range opts {
		if f != nil {
			f(&o)
		}
	}
	if len(o.modes) > 1 {
		return nil, nil, fmt.Errorf("%w: two attention modes given (%v and %v); pass one", ErrOption, o.modes[0], o.modes[1])
	}
	if o.modeSet && o.mode == ModeFixed {
		if o.stream.keepSet {
			return nil, nil, fmt.Errorf("%w: WithKeep applies to TestMode only, not to fixed mode", ErrOption)
		}
		if o.stream.lastSet {
			return nil, nil, fmt.Errorf("%w: WithLast applies to TestMode only, not to fixed mode", ErrOption)
		}
	}
	cfg := m.cfg
	L := cfg.NumLayers
	if !o.modeSet && len(cfg.LazyLayers) > 0 {
		o.mode, o.lazy = ModeFixed, cfg.LazyLayers
	}
	s := &Session{m: m, mode: o.mode, maxCtx: cfg.MaxPositions, chunk: defaultChunk, kvFull: o.kvFull, kvStr: o.kvStr}
	if o.maxContextSet {
		if o.maxContext < 1 || o.maxContext > cfg.MaxPositions {
			return nil, nil, fmt.Errorf("%w: max context %d outside [1, %d]", ErrOption, o.maxContext, cfg.MaxPositions)
		}
		s.maxCtx = o.maxContext
	}
	if o.chunkSet {
		if o.chunk < 1 {
			return nil, nil, fmt.Errorf("%w: chunk size %d must be positive", ErrOption, o.chunk)
		}
		s.chunk = o.chunk
	}
	s.sink, s.window, s.last, s.keep = DefaultSink, DefaultWindow, DefaultLast, DefaultKeep
	if s.mode == ModeFixed && cfg.StreamingWindow > 0 {
		s.sink, s.window = cfg.StreamingSink, cfg.StreamingWindow
	}
	if o.plan != nil {
		if err := o.plan.Validate(L); err != nil {
			return nil, nil, fmt.Errorf("%w: plan: %w", ErrOption, err)
		}
		o.lazy, s.sink, s.window = o.plan.Lazy, o.plan.Sink, o.plan.Window
	}
	st := o.stream
	if st.sinkSet {
		s.sink = st.sink
	}
	if st.windowSet {
		s.window = st.window
	}
	if st.lastSet {
		s.last = st.last
	}
	if st.keepSet {
		s.keep = st.keep
	}
	if s.sink < 0 {
		return nil, nil, fmt.Errorf("%w: sink %d must be >= 0", ErrOption, s.sink)
	}
	if s.window <= 0 {
		return nil, nil, fmt.Errorf("%w: window %d must be > 0", ErrOption, s.window)
	}
	if s.last <= 0 {
		return nil, nil, fmt.Errorf("%w: w_last %d must be > 0", ErrOption, s.last)
	}
	policies := make([]kvcache.Policy, L)
	switch s.mode {
	case ModeTest:
		on, err := layerselect.NewOnline(L, s.keep)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrOption, err)
		}
		s.online = on
	case ModeFixed:
		if err := layerselect.ValidateLayers(o.lazy, L); err != nil {
			return nil, nil, fmt.Errorf("%w: lazy layers: %w", ErrOption, err)
		}
		for _, l := range o.lazy {
			policies[l] = s.streaming()
		}
	}
	return s, policies, nil
}

// Mode returns the session's attention mode.
func (s *Session) Mode() Mode { return s.mode }

// Pos returns the number of tokens the session has processed (the next token's position).
func (s *Session) Pos() int { return s.pos }

// MaxContext returns the most tokens the session can hold.
func (s *Session) MaxContext() int { return s.maxCtx }

// Lazy returns the streaming layers in increasing order: the fixed list, or in Test mode the
// layers chosen so far (none before the first forward). A closed session has none.
func (s *Session) Lazy() []int {
	var out []int
	if s.cache == nil {
		return out
	}
	for l := range s.cache.Layers() {
		if s.cache.Policy(l).IsStreaming() {
			out = append(out, l)
		}
	}
	return out
}

// Ratios returns each layer's lazy ratio measured by Test mode's first forward, or nil when no
// ratios were measured (other modes, or a prompt too short to select on).
func (s *Session) Ratios() []float64 { return slices.Clone(s.ratios) }

// Usage returns the KV cache's allocation per layer and in total.
// A closed session reports zero usage.
func (s *Session) Usage() kvcache.Usage {
	if s.cache == nil {
		return kvcache.Usage{}
	}
	return s.cache.Usage()
}

// PeakKVBytes returns the most KV cache bytes the session has held at any moment, measured
// after every layer's append and truncation (so it includes Test mode's prefill peak).
func (s *Session) PeakKVBytes() int64 { return s.peakKV }

// Close releases the session's cache and buffers. Afterwards Next, Forward, Clone and
// MakeStreaming return an error wrapping ErrClosed. Closing twice is harmless.
func (s *Session) Close() {
	s.cache = nil
	s.buf = buffers{}
	s.err = fmt.Errorf("%w: the session was closed", ErrClosed)
}

// Forward appends tokens to the sequence and returns their logits, a [len(tokens)][vocab]
// float32 tensor: row t predicts the token after tokens[t]. On cancellation it returns nil and
// an error wrapping ctx's error, and the session keeps the tokens processed so far (see Next).
func (s *Session) Forward(ctx context.Context, tokens []int32) (*tensor.Dense, error) {
	V := s.m.cfg.VocabSize
	out := make([]float32, len(tokens)*V)
	if err := s.run(ctx, tokens, out); err != nil {
		return nil, err
	}
	return tensor.New(tensor.WithShape(len(tokens), V), tensor.WithBacking(out)), nil
}

// Next appends tokens to the sequence and returns the logits of the last one ([vocab]). The
// slice belongs to the session and is overwritten by the next call. Only the last row goes
// through the LM head.
//
// Cancellation leaves the session usable. ctx is checked before every span of at most the
// chunk size (WithChunkSize) and a span in flight is finished, so a cancelled call returns
// within one span with an error wrapping ctx's error, and Pos() counts the tokens kept: the
// session is then exactly as if the call had been given only those tokens. Test mode's
// selecting prefill (the session's first forward, one span over the whole prompt) checks ctx
// between layers instead and, when cancelled, restarts the session: position 0, no ratios,
// layers not yet selected, as fresh from NewSession.
func (s *Session) Next(ctx context.Context, tokens []int32) ([]float32, error) {
	if len(tokens) == 0 {
		return nil, fmt.Errorf("%w: no tokens", ErrOption)
	}
	if err := s.run(ctx, tokens, nil); err != nil {
		return nil, err
	}
	return s.buf.lastLogits[:s.m.cfg.VocabSize], nil
}

// run checks tokens and pushes them through the model in spans. all, when non-nil, receives
// every row's logits; the last row's logits always end in s.buf.lastLogits.
func (s *Session) run(ctx context.Context, tokens []int32, all []float32) error {
	if err := s.check(ctx, tokens); err != nil {
		return err
	}
	V := s.m.cfg.VocabSize
	selecting := s.mode == ModeTest && !s.selected && len(tokens) > 0
	span := s.chunk
	if selecting {
		span = len(tokens)
	}
	for lo := 0; lo < len(tokens); lo += span {
		if lo > 0 {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("model: cancelled after %d of %d tokens (session kept them, position %d): %w", lo, len(tokens), s.pos, err)
			}
		}
		hi := min(lo+span, len(tokens))
		var rows []float32
		if all != nil {
			rows = all[lo*V : hi*V]
		}
		s.parts[0] = part{s: s, tokens: tokens[lo:hi], all: rows}
		if err := s.m.forward(ctx, s.parts[:], &s.buf, min(s.chunk, s.maxCtx)); err != nil {
			return err
		}
	}
	return nil
}

// restart undoes an interrupted selecting prefill (Test mode's first forward): a new cache and
// selector, no ratios, position 0, so the session is again as NewSession made it (layers made
// streaming by MakeStreaming stay streaming; those the selector had picked are full again).
func (s *Session) restart() {
	L := s.m.cfg.NumLayers
	policies := make([]kvcache.Policy, L)
	picked := s.online.Lazy()
	for l := range L {
		if s.cache.Policy(l).IsStreaming() && !slices.Contains(picked, l) {
			policies[l] = s.streaming()
		}
	}
	c, err := s.m.be.newCache(policies, s.kvFull, s.kvStr)
	if err != nil {
		s.err = fmt.Errorf("model: restarting the session: %w", err)
		return
	}
	on, err := layerselect.NewOnline(L, s.keep)
	if err != nil {
		s.err = fmt.Errorf("model: restarting the session: %w", err)
		return
	}
	s.cache, s.online, s.ratios, s.selected, s.pos, s.peakKV = c, on, nil, false, 0, 0
}

// ChunkSize returns the most tokens one span of the session's forward holds (WithChunkSize,
// default 512): Next cuts its tokens into spans of this size, and Batch.Run takes at most one
// span per session per step.
func (s *Session) ChunkSize() int { return s.chunk }

// spanLimit returns the most tokens the session's next span may hold: the chunk size, or in
// Test mode before the selecting prefill the context (that prefill is one span).
func (s *Session) spanLimit() int {
	if s.mode == ModeTest && !s.selected {
		return s.maxCtx
	}
	return s.chunk
}

// EstimateKV returns the exact bytes of KV cache a session made with opts holds once it has
// processed tokens tokens (see kvcache.Estimate): its streaming layers at their sink+window
// bound, its full layers in whole blocks. For Test mode it is the full-attention worst case,
// every layer full, which the session holds while its selecting prefill runs; the layers it
// then makes streaming hold less. Options are checked as NewSession checks them (errors wrap
// ErrOption, and kvcache.ErrType for an unknown element type); tokens < 0 is an error.
func (m *Model) EstimateKV(tokens int, opts ...SessionOption) (int64, error) {
	if tokens < 0 {
		return 0, fmt.Errorf("%w: %d tokens to estimate the KV cache of", ErrOption, tokens)
	}
	s, policies, err := m.configure(opts)
	if err != nil {
		return 0, err
	}
	shape := kvcache.Shape{KVHeads: m.cfg.NumKVHeads, HeadDim: m.cfg.HeadDim}
	for _, t := range [2]kvcache.Type{s.kvFull, s.kvStr} {
		if err := t.Validate(shape); err != nil {
			return 0, fmt.Errorf("%w: %w", ErrOption, err)
		}
	}
	return kvcache.Estimate(shape, policies, tokens, kvcache.WithType(s.kvFull, s.kvStr)), nil
}

// Sink returns the attention-sink size of the session's streaming layers.
func (s *Session) Sink() int { return s.sink }

// Window returns the recent window of the session's streaming layers.
func (s *Session) Window() int { return s.window }

// MakeStreaming turns full layers into streaming layers now, exactly as Test mode does when
// it picks them: each cache is cut to its first sink tokens plus its last window−1 tokens and
// later queries of that layer use the streaming mask. Layers already streaming are an error.
// It lets experiments impose their own choice of lazy layers after a full-attention prefill.
func (s *Session) MakeStreaming(layers ...int) error {
	if s.err != nil {
		return s.err
	}
	if err := s.m.errIfClosed(); err != nil {
		return err
	}
	if err := layerselect.ValidateLayers(layers, s.m.cfg.NumLayers); err != nil {
		return fmt.Errorf("%w: %w", ErrOption, err)
	}
	for _, l := range layers {
		if s.cache.Policy(l).IsStreaming() {
			return fmt.Errorf("%w: layer %d is already streaming", ErrOption, l)
		}
	}
	for _, l := range layers {
		if err := s.cache.Convert(l, s.streaming()); err != nil {
			return fmt.Errorf("model: making layer %d streaming: %w", l, err)
		}
	}
	return nil
}

// check reports why tokens cannot be appended to the session now.
func (s *Session) check(ctx context.Context, tokens []int32) error {
	if s.err != nil {
		return s.err
	}
	if err := s.m.errIfClosed(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	V := s.m.cfg.VocabSize
	for i, t := range tokens {
		if t < 0 || int(t) >= V {
			return fmt.Errorf("%w: token %d at index %d is outside the vocabulary [0, %d)", ErrToken, t, i, V)
		}
	}
	if s.pos+len(tokens) > s.maxCtx {
		return fmt.Errorf("%w: %d tokens after %d already held exceed the context of %d", ErrContext, len(tokens), s.pos, s.maxCtx)
	}
	return nil
}

// Clone returns an independent copy of the session: same position, cache contents, lazy
// layers and options, with its own buffers. Benchmarks use it to fill many sequences of a
// batch from one prefill.
func (s *Session) Clone() (*Session, error) {
	if s.err != nil {
		return nil, s.err
	}
	if err := s.m.errIfClosed(); err != nil {
		return nil, err
	}
	return s.clone(s.cache.Clone(), s.kvFull, s.kvStr)
}

// CloneKV is Clone with the copy's KV cache stored in other element types: full layers in
// full, streaming layers in streaming (also the types its later layers and a restart use). The
// session's float32 layers are re-encoded exactly as appending their tokens in those types would
// have stored them (so one float32 prefill can serve several cache types; the copy's earlier
// attention then saw float32 keys); a reduced-precision layer cannot change type. Errors wrap
// ErrOption and kvcache.ErrType, naming the layer and the types.
func (s *Session) CloneKV(full, streaming kvcache.Type) (*Session, error) {
	if s.err != nil {
		return nil, s.err
	}
	if err := s.m.errIfClosed(); err != nil {
		return nil, err
	}
	c, err := s.cache.CloneAs(full, streaming)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrOption, err)
	}
	d, err := s.clone(c, full, streaming)
	if err != nil {
		return nil, err
	}
	d.peakKV = c.Bytes() // the copy never held the float32 cache
	return d, nil
}

// clone returns a copy of s over cache, its types full and streaming.
func (s *Session) clone(cache *kvcache.Cache, full, streaming kvcache.Type) (*Session, error) {
	c := &Session{m: s.m, mode: s.mode, sink: s.sink, window: s.window, last: s.last, keep: s.keep,
		maxCtx: s.maxCtx, chunk: s.chunk, pos: s.pos, selected: s.selected, peakKV: s.peakKV,
		kvFull: full, kvStr: streaming}
	c.cache = cache
	c.ratios = slices.Clone(s.ratios)
	if s.mode == ModeTest && !s.selected {
		on, err := layerselect.NewOnline(s.m.cfg.NumLayers, s.keep)
		if err != nil {
			return nil, err
		}
		c.online = on
	}
	return c, nil
}

// streaming returns the policy of the session's lazy layers.
func (s *Session) streaming() kvcache.Policy { return kvcache.Streaming(s.sink, s.window) }

// ratioWindow returns Test mode's lazy-ratio windows.
func (s *Session) ratioWindow() layerselect.Window {
	return layerselect.Window{Sink: s.sink, Recent: s.window, Last: s.last}
}

// beginStep starts a forward step of n tokens. first reports Test mode's first forward (the
// selecting prefill, which restart undoes if it is stopped), selecting whether it measures
// lazy ratios: when the prompt is longer than sink+window and at least w_last. The first
// forward counts as the selecting one even when it is too short to select on.
func (s *Session) beginStep(n int) (first, selecting bool) {
	if s.mode != ModeTest || s.selected {
		return false, false
	}
	s.selected = true
	if n <= s.sink+s.window || n < s.last {
		return true, false
	}
	if s.ratios == nil {
		s.ratios = make([]float64, s.m.cfg.NumLayers)
	}
	return true, true
}

// layer returns the cache layer li that this step's attention reads.
func (s *Session) layer(li int) kvcache.Layer { return s.cache.Layer(li) }

// appendKV appends the step's keys and values of layer li to the cache and tracks the peak
// bytes held.
func (s *Session) appendKV(li int, k, v []float32, pos []int32) error {
	if err := s.cache.Append(li, k, v, pos); err != nil {
		s.err = fmt.Errorf("model: layer %d: %w", li, err)
		return s.err
	}
	s.peakKV = max(s.peakKV, s.cache.Bytes())
	return nil
}

// observe records layer li's lazy ratio and turns the layers the online selector pops into
// streaming layers at once, truncating their caches.
func (s *Session) observe(li int, ratio float64) error {
	s.ratios[li] = ratio
	for _, j := range s.online.Observe(li, ratio) {
		if err := s.cache.Convert(j, s.streaming()); err != nil {
			s.err = fmt.Errorf("model: truncating layer %d: %w", j, err)
			return s.err
		}
	}
	return nil
}

// endStep ends a forward step of n tokens: the position moves past them.
func (s *Session) endStep(n int) { s.pos += n }
