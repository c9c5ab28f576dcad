package kvcache

import (
	"errors"
	"fmt"
)

// DefaultBlockTokens is the number of tokens per storage block of a full layer
// unless [WithBlockTokens] says otherwise.
const DefaultBlockTokens = 256

// ErrPolicy reports an invalid [Policy] or a Convert that is not full → streaming.
var ErrPolicy = errors.New("kvcache: invalid policy")

// ErrLayer reports a layer index out of range or a cache without layers.
var ErrLayer = errors.New("kvcache: invalid layer")

// ErrShape reports an invalid [Shape], block size, or k/v/pos slices whose
// sizes do not match.
var ErrShape = errors.New("kvcache: size mismatch")

// cacheError carries a complete message ("kvcache: layer 3: ...") and unwraps
// to one of the sentinels, so errors.Is works without repeating the sentinel
// text in the message.
type cacheError struct {
	msg  string
	kind error
}

func (e *cacheError) Error() string { return e.msg }
func (e *cacheError) Unwrap() error { return e.kind }

func errorf(kind error, format string, args ...any) error {
	return &cacheError{msg: "kvcache: " + fmt.Sprintf(format, args...), kind: kind}
}

// Shape is the per-token geometry of the cached keys and values: KVHeads heads
// of HeadDim floats each, for K and again for V.
type Shape struct {
	KVHeads, HeadDim int
}

// Width returns KVHeads*HeadDim, the number of values per token for K
// (and, separately, for V).
func (s Shape) Width() int { return s.KVHeads * s.HeadDim }

func (s Shape) validate() error {
	if s.KVHeads <= 0 || s.HeadDim <= 0 {
		return errorf(ErrShape, "shape KVHeads %d HeadDim %d: both must be > 0", s.KVHeads, s.HeadDim)
	}
	return nil
}

// SlotBytes returns the bytes one cached token slot of the float32 layers (full and
// streaming) costs: K and V of Width values each plus one int32 position, i.e. 2·Width·4 + 4.
func SlotBytes(s Shape) int64 { return slotBytes(s.Width()) }

func slotBytes(width int) int64 { return 2*int64(width)*4 + 4 }

type options struct {
	blockTokens       int
	fullT, streamingT Type
}

// Option configures [New] and [Estimate].
type Option func(*options)

// WithBlockTokens sets the number of tokens per storage block of full layers
// (default [DefaultBlockTokens]). New reports an error wrapping [ErrShape] for
// n <= 0; Estimate falls back to the default.
func WithBlockTokens(n int) Option { return func(o *options) { o.blockTokens = n } }

// WithType sets the element type of the layers whose policy given to New is Full (full) and of
// those streaming from the start (streaming); both default to [F32]. A full layer keeps its
// type when converted to streaming. New reports an error wrapping [ErrType] for an unknown
// type; Estimate counts an unknown type as F32.
func WithType(full, streaming Type) Option {
	return func(o *options) { o.fullT, o.streamingT = full, streaming }
}

func buildOptions(opts []Option) options {
	o := options{blockTokens: DefaultBlockTokens}
	for _, f := range opts {
		if f != nil {
			f(&o)
		}
	}
	return o
}

// Cache is the key/value cache of one sequence: one [Layer] per model layer.
// It is not safe for concurrent mutation.
type Cache struct {
	shape  Shape
	width  int
	bt     int
	init   []Policy // policies given to New (Reset restores them)
	types  []Type   // each layer's element type (New's, or SetType's)
	layers []Layer
}

// New returns an empty cache with one layer per policy, of the element types [WithType] sets
// (default F32). It reports errors wrapping [ErrShape] (bad shape or block size), [ErrLayer]
// (no policies), [ErrPolicy] (an invalid policy, naming the layer) or [ErrType] (an unknown
// element type, naming it). Nothing is allocated for
// the tokens until they are appended.
func New(s Shape, policies []Policy, opts ...Option) (*Cache, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	o := buildOptions(opts)
	if o.blockTokens <= 0 {
		return nil, errorf(ErrShape, "block tokens %d: must be > 0", o.blockTokens)
	}
	if len(policies) == 0 {
		return nil, errorf(ErrLayer, "no layers: need at least one policy")
	}
	c := &Cache{
		shape:  s,
		width:  s.Width(),
		bt:     o.blockTokens,
		init:   append([]Policy(nil), policies...),
		types:  make([]Type, len(policies)),
		layers: make([]Layer, len(policies)),
	}
	for i, p := range policies {
		if err := p.Validate(); err != nil {
			return nil, errorf(ErrPolicy, "layer %d: %s", i, trimPrefix(err.Error()))
		}
		t := o.fullT
		if p.IsStreaming() {
			t = o.streamingT
		}
		if err := t.Validate(s); err != nil {
			return nil, errorf(ErrType, "layer %d: %s", i, trimPrefix(err.Error()))
		}
		c.types[i] = t
		c.layers[i] = newLayer(s, p, t, c.bt)
	}
	return c, nil
}

func trimPrefix(msg string) string {
	const pfx = "kvcache: "
	if len(msg) >= len(pfx) && msg[:len(pfx)] == pfx {
		return msg[len(pfx):]
	}
	return msg
}

// Shape returns the cache's per-token geometry.
func (c *Cache) Shape() Shape { return c.shape }

// Layers returns the number of layers.
func (c *Cache) Layers() int { return len(c.layers) }

// Layer returns layer i itself (its tokens, policy and bytes; it satisfies the attention
// package's KV interface). It panics if i is out of range.
func (c *Cache) Layer(i int) Layer {
	if i < 0 || i >= len(c.layers) {
		panic(fmt.Sprintf("kvcache: layer %d out of range [0,%d)", i, len(c.layers)))
	}
	return c.layers[i]
}

// Policy returns the current policy of layer (after any Convert). It panics if
// layer is out of range.
func (c *Cache) Policy(layer int) Policy { return c.Layer(layer).Policy() }

// Len returns the number of tokens layer holds now (at most Sink+Window for a
// streaming layer). It panics if layer is out of range.
func (c *Cache) Len(layer int) int { return c.Layer(layer).Len() }

func (c *Cache) checkLayer(layer int) error {
	if layer < 0 || layer >= len(c.layers) {
		return errorf(ErrLayer, "layer %d: out of range [0,%d)", layer, len(c.layers))
	}
	return nil
}

// Append adds len(pos) tokens to layer: k and v are [len(pos)][Width] (keys
// after RoPE), pos their absolute positions. For a streaming layer the first
// Sink tokens ever appended go to the sink segment and later ones to the ring,
// overwriting the oldest; appending many tokens at once is exactly equivalent to
// appending them one by one. Errors wrap [ErrLayer] or [ErrShape]. In steady
// state (no new block needed) Append does not allocate.
func (c *Cache) Append(layer int, k, v []float32, pos []int32) error {
	if err := c.checkLayer(layer); err != nil {
		return err
	}
	w := c.width
	if len(k) != len(pos)*w || len(v) != len(pos)*w {
		return errorf(ErrShape, "layer %d: append of %d positions needs k and v of %d floats, got %d and %d",
			layer, len(pos), len(pos)*w, len(k), len(v))
	}
	if len(pos) == 0 {
		return nil
	}
	c.layers[layer].Append(k, v, pos)
	return nil
}

// Convert turns the full layer into a streaming layer with policy p in place:
// it keeps the first p.Sink and the last p.Window-1 tokens in arrival order
// (one ring slot stays free for the next token), allocates the Sink+Window
// slots (only if the layer holds tokens; otherwise at the next append) and drops
// the full blocks at once, so Usage falls immediately. Later appends behave as
// if the layer had been streaming from the start. Errors wrap [ErrLayer]
// (layer out of range) or [ErrPolicy] (p invalid or Full, or the layer already
// streaming).
func (c *Cache) Convert(layer int, p Policy) error {
	if err := c.checkLayer(layer); err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return errorf(ErrPolicy, "layer %d: convert: %s", layer, trimPrefix(err.Error()))
	}
	l, err := c.layers[layer].Convert(p)
	if err != nil {
		return errorf(ErrPolicy, "layer %d: %s", layer, trimPrefix(err.Error()))
	}
	c.layers[layer] = l
	return nil
}

// Clone returns a deep copy of the cache (tokens, policies, allocated memory),
// so c.Clone().Usage() equals c.Usage().
func (c *Cache) Clone() *Cache {
	d := &Cache{
		shape:  c.shape,
		width:  c.width,
		bt:     c.bt,
		init:   append([]Policy(nil), c.init...),
		types:  append([]Type(nil), c.types...),
		layers: make([]Layer, len(c.layers)),
	}
	for i, l := range c.layers {
		d.layers[i] = l.Clone()
	}
	return d
}

// CloneAs returns a deep copy of the cache whose full layers store type full and streaming
// layers type streaming (the types Reset then restores): a layer of the source already of its
// target type is copied, an F32 layer is re-encoded slot by slot, exactly as appending its
// tokens in that type would have stored them (Q4: the tokens it holds appended in arrival
// order to a Q4 layer of its policy). It lets a prefill run once in float32 and serve
// several cache types. Errors wrap [ErrType]: an unknown type, or a reduced-precision layer
// asked to change type (its float32 values are gone), naming the layer and both types.
func (c *Cache) CloneAs(full, streaming Type) (*Cache, error) {
	d := &Cache{
		shape:  c.shape,
		width:  c.width,
		bt:     c.bt,
		init:   append([]Policy(nil), c.init...),
		types:  make([]Type, len(c.layers)),
		layers: make([]Layer, len(c.layers)),
	}
	for i, l := range c.layers {
		t := full
		if l.Policy().IsStreaming() {
			t = streaming
		}
		if err := t.Validate(c.shape); err != nil {
			return nil, errorf(ErrType, "layer %d: %s", i, trimPrefix(err.Error()))
		}
		switch {
		case l.Type() == t:
			d.layers[i] = l.Clone()
		case l.Type() == F32:
			d.layers[i] = retype(l, t)
		default:
			return nil, errorf(ErrType, "layer %d: clone as %v: the layer holds type %v, only f32 can be re-encoded", i, t, l.Type())
		}
		d.types[i] = t
	}
	return d, nil
}

// Reset drops all tokens and restores the policies given to New (undoing any
// Convert), so the cache can serve a new sequence. It keeps the memory already
// allocated by layers whose policy is unchanged (full blocks, streaming slots)
// for reuse, so Usage still counts it; a converted layer's streaming slots are
// released.
func (c *Cache) Reset() {
	for i, l := range c.layers {
		if l.Policy() != c.init[i] {
			c.layers[i] = newLayer(c.shape, c.init[i], c.types[i], c.bt)
			continue
		}
		l.Reset()
	}
}

// Type returns layer's element type. It panics if layer is out of range.
func (c *Cache) Type(layer int) Type { return c.Layer(layer).Type() }

// SetType changes the element type of an empty layer (keeping its policy; Reset keeps the new
// type). Errors wrap [ErrLayer] (layer out of range) or [ErrType] (an unknown type, or a layer
// that holds tokens, naming the layer and both types); setting the type a layer has is a no-op.
func (c *Cache) SetType(layer int, t Type) error {
	if err := c.checkLayer(layer); err != nil {
		return err
	}
	if err := t.Validate(c.shape); err != nil {
		return errorf(ErrType, "layer %d: %s", layer, trimPrefix(err.Error()))
	}
	l := c.layers[layer]
	if l.Type() == t {
		return nil
	}
	if l.Len() > 0 {
		return errorf(ErrType, "layer %d: set type %v: the layer holds %d tokens of type %v", layer, t, l.Len(), l.Type())
	}
	c.types[layer] = t
	c.layers[layer] = newLayer(c.shape, l.Policy(), t, c.bt)
	return nil
}

// View returns a read-only view of layer's tokens as segments; it does not
// allocate. The view reads the layer live: after a mutation of the layer, call
// NumSegments and Segment again rather than reusing old slices. It panics if
// layer is out of range.
func (c *Cache) View(layer int) View { return View{l: c.Layer(layer)} }

// View is a layer's tokens as segments of (k, v, pos), slot order arbitrary:
// a full layer gives one segment per block in use (the last trimmed to its
// filled part); a streaming layer gives the sink segment (if not empty) and
// then the filled part of the ring (if not empty). It satisfies the attention
// package's KV interface. The zero View has no segments. A View keeps reading
// the layer it was made from: after a Convert of that layer, take a new View.
type View struct{ l Layer }

// NumSegments returns the number of non-empty segments.
func (vw View) NumSegments() int {
	if vw.l == nil {
		return 0
	}
	return vw.l.NumSegments()
}

// Segment returns segment i (0 <= i < NumSegments()): k and v are
// [len(pos)][Width], pos the tokens' absolute positions. The slices alias the
// cache. It panics if i is out of range.
func (vw View) Segment(i int) (k, v []float32, pos []int32) {
	if vw.l == nil {
		panic(fmt.Sprintf("kvcache: segment %d of an empty view", i))
	}
	return vw.l.Segment(i)
}

// SegmentQ returns segment i as stored (see [Layer]); it satisfies the attention package's
// QKV interface. It panics if i is out of range.
func (vw View) SegmentQ(i int) (elem int, k, v []byte, ks, vs []float32, pos []int32) {
	if vw.l == nil {
		panic(fmt.Sprintf("kvcache: segment %d of an empty view", i))
	}
	return vw.l.SegmentQ(i)
}
