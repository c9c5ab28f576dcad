package kvcache

import (
	"fmt"
	"math"
)

// Q4Block is the number of consecutive tokens whose keys share per-channel 4-bit scales in a
// Q4 layer.
const Q4Block = 32

// q4group is one closed block of Q4Block tokens: keys quantized per channel over the block,
// values per token (asymmetric min/max, 15 steps, codes 0..15 packed two a byte, element c of
// a row in byte c/2, the low nibble for even c).
type q4group struct {
	k, v []byte    // [Q4Block][rowBytes]
	ks   []float32 // [2][Width]: each channel's step, then its minimum
	vs   []float32 // [Q4Block][2][groups]: each token's steps per group, then its minima
	pos  []int32   // [Q4Block]
}

// q4RowBytes is the bytes of one token's packed codes.
func q4RowBytes(s Shape) int { return (s.Width() + 1) / 2 }

// q4GroupBytes is the bytes one closed Q4 block costs.
func q4GroupBytes(s Shape) int64 {
	w, g := int64(s.Width()), int64(groups(s))
	return 2*Q4Block*int64(q4RowBytes(s)) + 2*w*4 + Q4Block*2*g*4 + Q4Block*4
}

func newQ4Group(s Shape) *q4group {
	rb, w, g := q4RowBytes(s), s.Width(), groups(s)
	kv := make([]byte, 2*Q4Block*rb)
	return &q4group{k: kv[: Q4Block*rb : Q4Block*rb], v: kv[Q4Block*rb:], ks: make([]float32, 2*w),
		vs: make([]float32, Q4Block*2*g), pos: make([]int32, Q4Block)}
}

// q4Code returns the 4-bit code of x on the grid lo + step·c.
func q4Code(x, lo, step float32) byte {
	if step == 0 {
		return 0
	}
	c := math.Round(float64((x - lo) / step))
	return byte(max(0, min(15, c)))
}

func putNibble(row []byte, c int, code byte) {
	if c&1 == 0 {
		row[c/2] = row[c/2]&0xf0 | code
	} else {
		row[c/2] = row[c/2]&0x0f | code<<4
	}
}

func nibble(row []byte, c int) byte { return row[c/2] >> (4 * (c & 1)) & 15 }

// encode quantizes Q4Block tokens (k, v [Q4Block][Width]) into g.
func (g *q4group) encode(s Shape, k, v []float32, pos []int32) {
	w, rb, ng, hd := s.Width(), q4RowBytes(s), groups(s), s.HeadDim
	for c := range w {
		lo, hi := float32(math.Inf(1)), float32(math.Inf(-1))
		for t := range Q4Block {
			x := k[t*w+c]
			lo, hi = min(lo, x), max(hi, x)
		}
		step := (hi - lo) / 15
		g.ks[c], g.ks[w+c] = step, lo
		for t := range Q4Block {
			putNibble(g.k[t*rb:], c, q4Code(k[t*w+c], lo, step))
		}
	}
	gs := GroupSize(hd)
	for t := range Q4Block {
		row, vs := v[t*w:(t+1)*w], g.vs[t*2*ng:(t+1)*2*ng]
		gi := 0
		for h := 0; h < w; h += hd {
			for a := h; a < h+hd; a += gs {
				e := min(a+gs, h+hd)
				lo, hi := float32(math.Inf(1)), float32(math.Inf(-1))
				for _, x := range row[a:e] {
					lo, hi = min(lo, x), max(hi, x)
				}
				step := (hi - lo) / 15
				vs[gi], vs[ng+gi] = step, lo
				for i := a; i < e; i++ {
					putNibble(g.v[t*rb:], i, q4Code(row[i], lo, step))
				}
				gi++
			}
		}
	}
	copy(g.pos, pos)
}

// decode writes token t's dequantized key and value (Width each) to k and v.
func (g *q4group) decode(s Shape, t int, k, v []float32) {
	w, rb, ng, hd := s.Width(), q4RowBytes(s), groups(s), s.HeadDim
	gs := GroupSize(hd)
	for c := range w {
		k[c] = float32(nibble(g.k[t*rb:], c))*g.ks[c] + g.ks[w+c]
		gi := c/hd*((hd+gs-1)/gs) + c%hd/gs
		v[c] = float32(nibble(g.v[t*rb:], c))*g.vs[t*2*ng+gi] + g.vs[t*2*ng+ng+gi]
	}
}

func (g *q4group) clone() *q4group {
	return &q4group{k: append([]byte(nil), g.k...), v: append([]byte(nil), g.v...),
		ks: append([]float32(nil), g.ks...), vs: append([]float32(nil), g.vs...), pos: append([]int32(nil), g.pos...)}
}

// q4layer is a full or streaming layer of type Q4 (KIVI-style): tokens are collected in an
// open block of Q4Block float32 slots; a full open block is quantized into a closed q4group
// (keys per channel over the block, values per token). A full layer keeps every closed block;
// a streaming one keeps its first Sink tokens in float32 slots of their own and a ring of
// ceil(Window/Q4Block) closed blocks, overwriting the oldest, so it holds at least the last
// Window tokens (a few older ones stay, invisible under the mask). The open block, the sink
// slots and (streaming) are allocated on the first append, closed blocks as they close.
type q4layer struct {
	s      Shape
	p      Policy
	sk, sv []float32 // sink [Sink][w]
	spos   []int32
	sinkN  int
	groups []*q4group // allocated blocks; full: the first ng in arrival order; streaming: a ring
	ng     int        // closed blocks held
	head   int        // streaming: next ring block to overwrite once ng == ring()
	ok, ov []float32  // open block [Q4Block][w], nil until the first append
	opos   []int32
	openN  int
}

var _ Layer = (*q4layer)(nil)

func newQ4Layer(s Shape, p Policy) *q4layer { return &q4layer{s: s, p: p} }

// ring is the number of closed blocks a streaming layer keeps.
func (l *q4layer) ring() int { return (l.p.Window + Q4Block - 1) / Q4Block }

func (l *q4layer) Policy() Policy { return l.p }
func (l *q4layer) Type() Type     { return Q4 }
func (l *q4layer) Len() int       { return l.sinkN + l.ng*Q4Block + l.openN }

func (l *q4layer) Capacity() int {
	n := len(l.groups) * Q4Block
	if l.ok != nil {
		n += Q4Block + l.p.Sink
	}
	return n
}

func (l *q4layer) Bytes() int64 {
	n := int64(len(l.groups)) * q4GroupBytes(l.s)
	if l.ok != nil {
		n += int64(Q4Block+l.p.Sink) * F32.SlotBytes(l.s)
	}
	return n
}

func (l *q4layer) DataBytes() int64 {
	return int64(l.ng)*(q4GroupBytes(l.s)-Q4Block*4) + dataBytes(l.s, F32, l.sinkN+l.openN)
}

func (l *q4layer) alloc() {
	w := l.s.Width()
	n := Q4Block * w
	kv := make([]float32, 2*n)
	l.ok, l.ov, l.opos = kv[:n:n], kv[n:], make([]int32, Q4Block)
	if l.p.Sink > 0 {
		m := l.p.Sink * w
		skv := make([]float32, 2*m)
		l.sk, l.sv, l.spos = skv[:m:m], skv[m:], make([]int32, l.p.Sink)
	}
}

func (l *q4layer) NumSegments() int {
	n := l.ng
	if l.sinkN > 0 {
		n++
	}
	if l.openN > 0 {
		n++
	}
	return n
}

// seg locates segment i: -1 the sink, -2 the open block, else a closed block's index.
func (l *q4layer) seg(i int) int {
	if i < 0 || i >= l.NumSegments() {
		panic(fmt.Sprintf("kvcache: segment %d out of range [0,%d)", i, l.NumSegments()))
	}
	if l.sinkN > 0 {
		if i == 0 {
			return -1
		}
		i--
	}
	if i < l.ng {
		return i
	}
	return -2
}

func (l *q4layer) Segment(i int) (k, v []float32, pos []int32) {
	w := l.s.Width()
	switch b := l.seg(i); b {
	case -1:
		return l.sk[:l.sinkN*w], l.sv[:l.sinkN*w], l.spos[:l.sinkN]
	case -2:
		return l.ok[:l.openN*w], l.ov[:l.openN*w], l.opos[:l.openN]
	default:
		return nil, nil, l.groups[b].pos
	}
}

func (l *q4layer) SegmentQ(i int) (elem int, k, v []byte, ks, vs []float32, pos []int32) {
	b := l.seg(i)
	if b < 0 {
		_, _, pos = l.Segment(i)
		return int(F32), nil, nil, nil, nil, pos
	}
	g := l.groups[b]
	return int(Q4), g.k, g.v, g.ks, g.vs, g.pos
}

func (l *q4layer) Append(k, v []float32, pos []int32) {
	if len(pos) == 0 {
		return
	}
	if l.ok == nil {
		l.alloc()
	}
	w := l.s.Width()
	for t := range pos {
		kt, vt := k[t*w:(t+1)*w], v[t*w:(t+1)*w]
		if l.sinkN < l.p.Sink {
			copy(l.sk[l.sinkN*w:], kt)
			copy(l.sv[l.sinkN*w:], vt)
			l.spos[l.sinkN] = pos[t]
			l.sinkN++
			continue
		}
		copy(l.ok[l.openN*w:], kt)
		copy(l.ov[l.openN*w:], vt)
		l.opos[l.openN] = pos[t]
		if l.openN++; l.openN == Q4Block {
			l.close()
		}
	}
}

// close quantizes the full open block into the next closed block.
func (l *q4layer) close() {
	var g *q4group
	switch {
	case l.p.IsStreaming() && l.ng == l.ring():
		g = l.groups[l.head]
		l.head = (l.head + 1) % l.ng
	case l.ng < len(l.groups):
		g = l.groups[l.ng]
		l.ng++
	default:
		g = newQ4Group(l.s)
		l.groups = append(l.groups, g)
		l.ng++
	}
	g.encode(l.s, l.ok, l.ov, l.opos)
	l.openN = 0
}

// tokens returns the layer's tokens as stored (closed blocks decoded), in arrival order.
func (l *q4layer) tokens() (k, v []float32, pos []int32) {
	w := l.s.Width()
	k, v = make([]float32, 0, l.Len()*w), make([]float32, 0, l.Len()*w)
	k, v, pos = append(k, l.sk[:l.sinkN*w]...), append(v, l.sv[:l.sinkN*w]...), append(pos, l.spos[:l.sinkN]...)
	kt, vt := make([]float32, w), make([]float32, w)
	for j := range l.ng {
		g := l.groups[j]
		if l.p.IsStreaming() && l.ng == l.ring() {
			g = l.groups[(l.head+j)%l.ng]
		}
		for t := range Q4Block {
			g.decode(l.s, t, kt, vt)
			k, v, pos = append(k, kt...), append(v, vt...), append(pos, g.pos[t])
		}
	}
	k, v, pos = append(k, l.ok[:l.openN*w]...), append(v, l.ov[:l.openN*w]...), append(pos, l.opos[:l.openN]...)
	return k, v, pos
}

// Convert to a streaming policy keeps the first p.Sink and the last p.Window−1 tokens in
// arrival order, as the full layer holds them (closed blocks decoded), appended to a new
// streaming Q4 layer; tokens in closed blocks are therefore quantized a second time, over
// their new blocks. The old blocks are released at once.
func (l *q4layer) Convert(p Policy) (Layer, error) {
	if l.p.IsStreaming() {
		return nil, errorf(ErrPolicy, "convert: already %v", l.p)
	}
	if !p.IsStreaming() {
		return nil, errorf(ErrPolicy, "convert to %v: only full → streaming is supported", p)
	}
	s := newQ4Layer(l.s, p)
	if n := l.Len(); n > 0 {
		w := l.s.Width()
		k, v, pos := l.tokens()
		ns := min(p.Sink, n)
		s.Append(k[:ns*w], v[:ns*w], pos[:ns])
		from := max(ns, n-(p.Window-1))
		s.Append(k[from*w:], v[from*w:], pos[from:])
	}
	clear(l.groups)
	*l = q4layer{s: l.s, p: l.p}
	return s, nil
}

func (l *q4layer) Clone() Layer {
	d := *l
	d.groups = make([]*q4group, len(l.groups))
	for j, g := range l.groups {
		d.groups[j] = g.clone()
	}
	if l.ok != nil {
		d.ok, d.ov, d.opos = append([]float32(nil), l.ok...), append([]float32(nil), l.ov...), append([]int32(nil), l.opos...)
		d.sk, d.sv, d.spos = append([]float32(nil), l.sk...), append([]float32(nil), l.sv...), append([]int32(nil), l.spos...)
	}
	return &d
}

func (l *q4layer) Reset() { l.sinkN, l.ng, l.head, l.openN = 0, 0, 0, 0 }
