package kvcache

import "fmt"

// full is a layer that keeps every token, in blocks of bt tokens allocated as the layer grows
// (never token by token), in element type t. Segments are the blocks in use, in arrival order.
type full struct {
	s      Shape
	t      Type
	bt     int
	n      int     // tokens held
	blocks []block // allocated blocks; the first ceil(n/bt) are in use
}

// block is one storage block of a full layer.
type block struct {
	st  store   // [bt] slots
	pos []int32 // [bt]
}

var _ Layer = (*full)(nil)

func newFull(s Shape, t Type, bt int) *full { return &full{s: s, t: t, bt: bt} }

func (l *full) Policy() Policy   { return Full() }
func (l *full) Type() Type       { return l.t }
func (l *full) Len() int         { return l.n }
func (l *full) Capacity() int    { return len(l.blocks) * l.bt }
func (l *full) Bytes() int64     { return int64(l.Capacity()) * l.t.SlotBytes(l.s) }
func (l *full) DataBytes() int64 { return dataBytes(l.s, l.t, l.n) }

func (l *full) NumSegments() int { return (l.n + l.bt - 1) / l.bt }

// seg returns block i and its filled slot count.
func (l *full) seg(i int) (*block, int) {
	if i < 0 || i >= l.NumSegments() {
		panic(fmt.Sprintf("kvcache: segment %d out of range [0,%d)", i, l.NumSegments()))
	}
	return &l.blocks[i], min(l.bt, l.n-i*l.bt)
}

func (l *full) Segment(i int) (k, v []float32, pos []int32) {
	b, m := l.seg(i)
	k, v = b.st.f32(0, m)
	return k, v, b.pos[:m]
}

func (l *full) SegmentQ(i int) (elem int, k, v []byte, ks, vs []float32, pos []int32) {
	b, m := l.seg(i)
	k, v, ks, vs = b.st.raw(0, m)
	return int(l.t), k, v, ks, vs, b.pos[:m]
}

func (l *full) Append(k, v []float32, pos []int32) {
	w, bt := l.s.Width(), l.bt
	for len(pos) > 0 {
		bi, off := l.n/bt, l.n%bt
		if bi == len(l.blocks) {
			l.blocks = append(l.blocks, block{st: newStore(l.t, l.s, bt), pos: make([]int32, bt)})
		}
		b := &l.blocks[bi]
		m := min(bt-off, len(pos))
		b.st.put(off, k[:m*w], v[:m*w])
		copy(b.pos[off:], pos[:m])
		l.n += m
		k, v, pos = k[m*w:], v[m*w:], pos[m:]
	}
}

// Convert to a streaming policy keeps the first p.Sink and the last p.Window−1 tokens in
// arrival order (one ring slot stays free for the next token), moved exactly in the layer's
// type, and drops the blocks, so the bytes fall at once. Later appends behave as if the layer
// had been streaming from the start.
func (l *full) Convert(p Policy) (Layer, error) {
	if !p.IsStreaming() {
		return nil, errorf(ErrPolicy, "convert to %v: only full → streaming is supported", p)
	}
	s := newStreaming(l.s, l.t, p)
	if l.n > 0 {
		s.alloc()
		put := func(slot, i int) {
			b := &l.blocks[i/l.bt]
			s.st.move(slot, b.st, i%l.bt)
			s.pos[slot] = b.pos[i%l.bt]
		}
		s.sinkN = min(p.Sink, l.n)
		for i := range s.sinkN {
			put(i, i)
		}
		for i := max(s.sinkN, l.n-(p.Window-1)); i < l.n; i++ {
			put(p.Sink+s.filled, i)
			s.filled++
		}
		s.head = s.filled % p.Window
	}
	clear(l.blocks)
	*l = full{s: l.s, t: l.t, bt: l.bt}
	return s, nil
}

func (l *full) Clone() Layer {
	d := &full{s: l.s, t: l.t, bt: l.bt, n: l.n}
	if l.blocks != nil {
		d.blocks = make([]block, len(l.blocks))
		for j, b := range l.blocks {
			d.blocks[j] = block{st: b.st.clone(), pos: append([]int32(nil), b.pos...)}
		}
	}
	return d
}

func (l *full) Reset() { l.n = 0 }
