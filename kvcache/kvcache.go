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

// Width returns KVHeads*HeadDim, the number of float32 values per token for K
// (and, separately, for V).
func (s Shape) Width() int { return s.KVHeads * s.HeadDim }

func (s Shape) validate() error {
	if s.KVHeads <= 0 || s.HeadDim <= 0 {
		return errorf(ErrShape, "shape KVHeads %d HeadDim %d: both must be > 0", s.KVHeads, s.HeadDim)
	}
	return nil
}

// SlotBytes returns the bytes one cached token slot costs: float32 K and V of
// Width values each plus one int32 position, i.e. 2·Width·4 + 4.
func SlotBytes(s Shape) int64 { return 2*int64(s.Width())*4 + 4 }

// Policy says how a layer keeps its tokens. The zero value is Full (keep
// everything). Window > 0 means streaming: the first Sink tokens ever appended
// plus the most recent Window tokens (a ring). A Policy with Window == 0 and
// Sink != 0 is invalid (see [Policy.Validate]).
type Policy struct {
	Sink, Window int
}

// Full returns the policy that keeps every token (the zero Policy).
func Full() Policy { return Policy{} }

// Streaming returns the policy that keeps the first sink tokens plus the last
// window tokens. It does not validate; see [Policy.Validate].
func Streaming(sink, window int) Policy { return Policy{Sink: sink, Window: window} }

// IsStreaming reports whether p is a streaming policy (Window > 0).
func (p Policy) IsStreaming() bool { return p.Window > 0 }

// MaxTokens returns the most tokens a layer with this policy holds: Sink+Window
// for streaming, 0 (unbounded) for Full.
func (p Policy) MaxTokens() int {
	if p.IsStreaming() {
		return p.Sink + p.Window
	}
	return 0
}

// String returns "full" or "streaming(sink=S,window=W)".
func (p Policy) String() string {
	if p == (Policy{}) {
		return "full"
	}
	if p.IsStreaming() {
		return fmt.Sprintf("streaming(sink=%d,window=%d)", p.Sink, p.Window)
	}
	return fmt.Sprintf("invalid(sink=%d,window=%d)", p.Sink, p.Window)
}

// Validate reports an error wrapping [ErrPolicy] unless p is Full (the zero
// value) or streaming with Sink >= 0 and Window > 0. A negative Window, or a
// non-zero Sink with Window == 0, is invalid.
func (p Policy) Validate() error {
	switch {
	case p == (Policy{}):
		return nil
	case p.Window < 0:
		return errorf(ErrPolicy, "policy sink %d window %d: window must be >= 0", p.Sink, p.Window)
	case p.Window == 0:
		return errorf(ErrPolicy, "policy sink %d window 0: a sink needs a window > 0 (Full has sink 0, window 0)", p.Sink)
	case p.Sink < 0:
		return errorf(ErrPolicy, "policy sink %d window %d: sink must be >= 0", p.Sink, p.Window)
	}
	return nil
}

type options struct {
	blockTokens int
}

// Option configures [New] and [Estimate].
type Option func(*options)

// WithBlockTokens sets the number of tokens per storage block of full layers
// (default [DefaultBlockTokens]). New reports an error wrapping [ErrShape] for
// n <= 0; Estimate falls back to the default.
func WithBlockTokens(n int) Option { return func(o *options) { o.blockTokens = n } }

func buildOptions(opts []Option) options {
	o := options{blockTokens: DefaultBlockTokens}
	for _, f := range opts {
		if f != nil {
			f(&o)
		}
	}
	return o
}

// block is one storage block of a full layer.
type block struct {
	k, v []float32 // [blockTokens][width]
	pos  []int32   // [blockTokens]
}

// store is one layer's store.
type store struct {
	policy Policy

	// full layers
	n      int     // tokens held
	blocks []block // allocated blocks; the first ceil(n/bt) are in use

	// streaming layers: slots [0,Sink) are the sink, [Sink,Sink+Window) the ring
	k, v   []float32 // [Sink+Window][width], nil until first append
	pos    []int32   // [Sink+Window]
	sinkN  int       // sink slots filled
	filled int       // ring slots filled
	head   int       // next ring slot to write (relative to the ring start)
}

// Cache is the key/value cache of one sequence: one store per model layer.
// It is not safe for concurrent mutation.
type Cache struct {
	shape  Shape
	width  int
	bt     int
	init   []Policy // policies given to New (Reset restores them)
	layers []store
}

// New returns an empty cache with one layer per policy. It reports errors
// wrapping [ErrShape] (bad shape or block size), [ErrLayer] (no policies) or
// [ErrPolicy] (an invalid policy, naming the layer). Nothing is allocated for
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
	for i, p := range policies {
		if err := p.Validate(); err != nil {
			return nil, errorf(ErrPolicy, "layer %d: %s", i, trimPrefix(err.Error()))
		}
	}
	c := &Cache{
		shape:  s,
		width:  s.Width(),
		bt:     o.blockTokens,
		init:   append([]Policy(nil), policies...),
		layers: make([]store, len(policies)),
	}
	for i, p := range policies {
		c.layers[i].policy = p
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

// Layers returns the number of layers.
func (c *Cache) Layers() int { return len(c.layers) }

func (c *Cache) layer(i int) *store {
	if i < 0 || i >= len(c.layers) {
		panic(fmt.Sprintf("kvcache: layer %d out of range [0,%d)", i, len(c.layers)))
	}
	return &c.layers[i]
}

// Policy returns the current policy of layer (after any Convert). It panics if
// layer is out of range.
func (c *Cache) Policy(layer int) Policy { return c.layer(layer).policy }

// Len returns the number of tokens layer holds now (at most Sink+Window for a
// streaming layer). It panics if layer is out of range.
func (c *Cache) Len(layer int) int {
	l := c.layer(layer)
	if l.policy.IsStreaming() {
		return l.sinkN + l.filled
	}
	return l.n
}

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
	l := &c.layers[layer]
	if l.policy.IsStreaming() {
		c.appendStreaming(l, k, v, pos)
	} else {
		c.appendFull(l, k, v, pos)
	}
	return nil
}

func (c *Cache) appendFull(l *store, k, v []float32, pos []int32) {
	w, bt := c.width, c.bt
	for len(pos) > 0 {
		bi, off := l.n/bt, l.n%bt
		if bi == len(l.blocks) {
			l.blocks = append(l.blocks, c.newBlock())
		}
		b := &l.blocks[bi]
		m := min(bt-off, len(pos))
		copy(b.k[off*w:], k[:m*w])
		copy(b.v[off*w:], v[:m*w])
		copy(b.pos[off:], pos[:m])
		l.n += m
		k, v, pos = k[m*w:], v[m*w:], pos[m:]
	}
}

func (c *Cache) newBlock() block {
	n := c.bt * c.width
	kv := make([]float32, 2*n)
	return block{k: kv[:n:n], v: kv[n:], pos: make([]int32, c.bt)}
}

func (c *Cache) allocStreaming(l *store) {
	slots := l.policy.Sink + l.policy.Window
	n := slots * c.width
	kv := make([]float32, 2*n)
	l.k, l.v, l.pos = kv[:n:n], kv[n:], make([]int32, slots)
}

func (c *Cache) appendStreaming(l *store, k, v []float32, pos []int32) {
	if l.k == nil {
		c.allocStreaming(l)
	}
	w, sink, win := c.width, l.policy.Sink, l.policy.Window
	// Sink first: the first Sink tokens ever appended.
	if m := min(sink-l.sinkN, len(pos)); m > 0 {
		copy(l.k[l.sinkN*w:], k[:m*w])
		copy(l.v[l.sinkN*w:], v[:m*w])
		copy(l.pos[l.sinkN:], pos[:m])
		l.sinkN += m
		k, v, pos = k[m*w:], v[m*w:], pos[m:]
	}
	// Only the last Window tokens of the rest can survive; writing them in order
	// leaves the ring exactly as one-by-one appends would (oldest at head).
	if skip := len(pos) - win; skip > 0 {
		k, v, pos = k[skip*w:], v[skip*w:], pos[skip:]
	}
	for len(pos) > 0 {
		m := min(win-l.head, len(pos))
		s := sink + l.head
		copy(l.k[s*w:], k[:m*w])
		copy(l.v[s*w:], v[:m*w])
		copy(l.pos[s:], pos[:m])
		l.head = (l.head + m) % win
		l.filled = min(l.filled+m, win)
		k, v, pos = k[m*w:], v[m*w:], pos[m:]
	}
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
	if !p.IsStreaming() {
		return errorf(ErrPolicy, "layer %d: convert to full: only full → streaming is supported", layer)
	}
	l := &c.layers[layer]
	if l.policy.IsStreaming() {
		return errorf(ErrPolicy, "layer %d: convert: already %v", layer, l.policy)
	}
	old, n := l.blocks, l.n
	*l = store{policy: p}
	if n == 0 {
		return nil
	}
	c.allocStreaming(l)
	w, bt := c.width, c.bt
	cp := func(dst, src int) { // token src (arrival index) into slot dst
		b := &old[src/bt]
		o := src % bt
		copy(l.k[dst*w:(dst+1)*w], b.k[o*w:(o+1)*w])
		copy(l.v[dst*w:(dst+1)*w], b.v[o*w:(o+1)*w])
		l.pos[dst] = b.pos[o]
	}
	l.sinkN = min(p.Sink, n)
	for i := range l.sinkN {
		cp(i, i)
	}
	first := max(l.sinkN, n-(p.Window-1))
	for i := first; i < n; i++ {
		cp(p.Sink+l.filled, i)
		l.filled++
	}
	l.head = l.filled % p.Window
	clear(old) // the caller's blocks slice is gone with *l; clear for safety
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
		layers: make([]store, len(c.layers)),
	}
	for i := range c.layers {
		s, t := &c.layers[i], &d.layers[i]
		*t = *s
		if s.blocks != nil {
			t.blocks = make([]block, len(s.blocks))
			for j, b := range s.blocks {
				nb := d.newBlock()
				copy(nb.k, b.k)
				copy(nb.v, b.v)
				copy(nb.pos, b.pos)
				t.blocks[j] = nb
			}
		}
		if s.k != nil {
			n := len(s.k)
			kv := make([]float32, 2*n)
			copy(kv, s.k)
			copy(kv[n:], s.v)
			t.k, t.v, t.pos = kv[:n:n], kv[n:], append([]int32(nil), s.pos...)
		}
	}
	return d
}

// Reset drops all tokens and restores the policies given to New (undoing any
// Convert), so the cache can serve a new sequence. It keeps the memory already
// allocated by layers whose policy is unchanged (full blocks, streaming slots)
// for reuse, so Usage still counts it; a converted layer's streaming slots are
// released.
func (c *Cache) Reset() {
	for i := range c.layers {
		l := &c.layers[i]
		if l.policy != c.init[i] {
			*l = store{policy: c.init[i]}
			continue
		}
		l.n, l.sinkN, l.filled, l.head = 0, 0, 0, 0
	}
}

// View returns a read-only view of layer's tokens as segments; it does not
// allocate. The view reads the layer live: after a mutation of the layer, call
// NumSegments and Segment again rather than reusing old slices. It panics if
// layer is out of range.
func (c *Cache) View(layer int) View { return View{l: c.layer(layer), w: c.width, bt: c.bt} }

// View is a layer's tokens as segments of (k, v, pos), slot order arbitrary:
// a full layer gives one segment per block in use (the last trimmed to its
// filled part); a streaming layer gives the sink segment (if not empty) and
// then the filled part of the ring (if not empty). It satisfies the attention
// package's KV interface. The zero View has no segments.
type View struct {
	l  *store
	w  int
	bt int
}

// NumSegments returns the number of non-empty segments.
func (vw View) NumSegments() int {
	l := vw.l
	if l == nil {
		return 0
	}
	if l.policy.IsStreaming() {
		n := 0
		if l.sinkN > 0 {
			n++
		}
		if l.filled > 0 {
			n++
		}
		return n
	}
	return (l.n + vw.bt - 1) / vw.bt
}

// Segment returns segment i (0 <= i < NumSegments()): k and v are
// [len(pos)][Width], pos the tokens' absolute positions. The slices alias the
// cache. It panics if i is out of range.
func (vw View) Segment(i int) (k, v []float32, pos []int32) {
	l := vw.l
	if i < 0 || i >= vw.NumSegments() {
		panic(fmt.Sprintf("kvcache: segment %d out of range [0,%d)", i, vw.NumSegments()))
	}
	w := vw.w
	if l.policy.IsStreaming() {
		if i == 0 && l.sinkN > 0 {
			return l.k[:l.sinkN*w], l.v[:l.sinkN*w], l.pos[:l.sinkN]
		}
		s, e := l.policy.Sink, l.policy.Sink+l.filled
		return l.k[s*w : e*w], l.v[s*w : e*w], l.pos[s:e]
	}
	b := &l.blocks[i]
	m := min(vw.bt, l.n-i*vw.bt)
	return b.k[:m*w], b.v[:m*w], b.pos[:m]
}
