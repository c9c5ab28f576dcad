package model

import (
	"fmt"

	"github.com/lighttransfer/lighttransfer-go/kvcache"

	"github.com/lighttransfer/lighttransfer-go/layerselect"
)

// Mode is a session's attention mode.
type Mode int

const (
	// ModeFull keeps a full KV cache in every layer.
	ModeFull Mode = iota
	// ModeTest is LightTransfer-Test: lazy layers are chosen online during the first forward.
	ModeTest
	// ModeFixed uses a fixed list of lazy layers from the start.
	ModeFixed
)

// String returns "full", "test" or "fixed".
func (m Mode) String() string {
	switch m {
	case ModeFull:
		return "full"
	case ModeTest:
		return "test"
	case ModeFixed:
		return "fixed"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Defaults of the streaming layers and of Test-mode selection (see the package documentation).
const (
	DefaultSink   = 4    // attention-sink tokens a lazy layer keeps
	DefaultWindow = 1020 // recent tokens a lazy layer keeps, the query's own included
	DefaultLast   = 32   // prompt queries the lazy ratio averages over
	DefaultKeep   = 0.5  // fraction of layers Test mode keeps full
)

// SessionOption configures NewSession. A nil SessionOption is ignored.
type SessionOption func(*sessionOptions)

type sessionOptions struct {
	mode          Mode
	modeSet       bool
	modes         []Mode // every mode option given, in order (more than one is an error)
	lazy          []int
	plan          *layerselect.Plan
	stream        streamOptions
	maxContext    int
	maxContextSet bool
	chunk         int
	chunkSet      bool
	kvFull, kvStr kvcache.Type // element types of full and streaming-from-the-start layers
}

// setMode records a mode option.
func (o *sessionOptions) setMode(m Mode, lazy []int, plan *layerselect.Plan) {
	o.mode, o.modeSet, o.lazy, o.plan = m, true, lazy, plan
	o.modes = append(o.modes, m)
}

// StreamOption sets one parameter of the streaming layers or of Test-mode selection. Those not
// given take the defaults: in fixed mode the checkpoint's streaming_sink/streaming_window when
// it declares them, else DefaultSink, DefaultWindow; DefaultKeep, DefaultLast in Test mode.
// WithKeep and WithLast apply to TestMode only: given to FixedMode they make NewSession fail
// with ErrOption. A nil StreamOption is ignored.
type StreamOption func(*streamOptions)

type streamOptions struct {
	sink, window, last          int
	keep                        float64
	sinkSet, windowSet, lastSet bool
	keepSet                     bool
}

// WithSink sets the number of attention-sink tokens a lazy layer keeps (>= 0).
func WithSink(n int) StreamOption {
	return func(o *streamOptions) { o.sink, o.sinkSet = n, true }
}

// WithWindow sets the recent window of a lazy layer, the query's own token included (> 0).
func WithWindow(n int) StreamOption {
	return func(o *streamOptions) { o.window, o.windowSet = n, true }
}

// WithLast sets w_last, the number of final prompt queries the lazy ratio averages over (> 0).
func WithLast(n int) StreamOption {
	return func(o *streamOptions) { o.last, o.lastSet = n, true }
}

// WithKeep sets the fraction of layers Test mode keeps full, in (0, 1]. The count kept is
// ceil(keep·L − 1e-9).
func WithKeep(f float64) StreamOption {
	return func(o *streamOptions) { o.keep, o.keepSet = f, true }
}

// FullAttention makes every layer keep a full cache, also for checkpoints that declare lazy
// layers.
func FullAttention() SessionOption {
	return func(o *sessionOptions) { o.setMode(ModeFull, nil, nil) }
}

// TestMode selects LightTransfer-Test: the session's first forward runs full attention in
// every layer, computes each layer's lazy ratio and turns the laziest layers (all but
// ceil(keep·L) of them) into streaming layers as the prefill goes. A first forward of at most
// sink+window tokens, or of fewer than w_last tokens, makes no layer lazy.
func TestMode(opts ...StreamOption) SessionOption {
	return func(o *sessionOptions) {
		o.setMode(ModeTest, nil, nil)
		for _, f := range opts {
			if f != nil {
				f(&o.stream)
			}
		}
	}
}

// FixedMode makes the given layers streaming from the start: the streaming mask applies to
// every query of those layers, prompt included.
func FixedMode(lazy []int, opts ...StreamOption) SessionOption {
	return func(o *sessionOptions) {
		o.setMode(ModeFixed, append([]int(nil), lazy...), nil)
		for _, f := range opts {
			if f != nil {
				f(&o.stream)
			}
		}
	}
}

// WithPlan runs fixed mode with a plan's lazy layers, sink and window (see layerselect.Plan).
func WithPlan(p layerselect.Plan) SessionOption {
	return func(o *sessionOptions) {
		o.setMode(ModeFixed, nil, &p)
	}
}

// WithMaxContext caps the number of tokens a session can hold, n in [1,
// max_position_embeddings]; without it the cap is the model's max_position_embeddings. Any
// other n, 0 included, makes NewSession fail with ErrOption.
func WithMaxContext(n int) SessionOption {
	return func(o *sessionOptions) { o.maxContext, o.maxContextSet = n, true }
}

// WithChunkSize sets how many tokens a prefill pushes through all layers at once outside Test
// mode's first forward (default 512; n must be >= 1, else NewSession fails with ErrOption).
// Smaller chunks use less activation memory and let cancellation land sooner.
func WithChunkSize(n int) SessionOption {
	return func(o *sessionOptions) { o.chunk, o.chunkSet = n, true }
}

// WithKV stores every layer's keys and values in element type t (default kvcache.F32, which
// keeps every reference exact; kvcache.BF16 and kvcache.Q8 use 2 and about 1.1 bytes an
// element). It is WithKVTypes(t, t).
func WithKV(t kvcache.Type) SessionOption { return WithKVTypes(t, t) }

// WithKVTypes sets the element type of full layers and of layers streaming from the start
// (fixed mode's lazy layers). In Test mode every layer starts full, so has the full type, and
// keeps it when it is made streaming. An unknown type makes NewSession fail with an error
// wrapping ErrOption and kvcache.ErrType that names the layer and the type.
func WithKVTypes(full, streaming kvcache.Type) SessionOption {
	return func(o *sessionOptions) { o.kvFull, o.kvStr = full, streaming }
}
