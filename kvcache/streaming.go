package kvcache

import "fmt"

// streaming is a layer that keeps the first Sink tokens ever appended (the sink segment,
// slots [0, Sink)) and the most recent Window tokens (a ring, slots [Sink, Sink+Window),
// oldest overwritten), in element type t. Its Sink+Window slots are allocated on the first
// append. With Sink 0 it is a plain sliding window.
type streaming struct {
	s      Shape
	t      Type
	p      Policy
	st     store   // [Sink+Window] slots, nil until first append
	pos    []int32 // [Sink+Window]
	sinkN  int     // sink slots filled
	filled int     // ring slots filled
	head   int     // next ring slot to write (relative to the ring start)
}

var _ Layer = (*streaming)(nil)

func newStreaming(s Shape, t Type, p Policy) *streaming { return &streaming{s: s, t: t, p: p} }

func (l *streaming) Policy() Policy { return l.p }
func (l *streaming) Type() Type     { return l.t }
func (l *streaming) Len() int       { return l.sinkN + l.filled }

func (l *streaming) Capacity() int {
	if l.st == nil {
		return 0
	}
	return l.p.Sink + l.p.Window
}

func (l *streaming) Bytes() int64     { return int64(l.Capacity()) * l.t.SlotBytes(l.s) }
func (l *streaming) DataBytes() int64 { return dataBytes(l.s, l.t, l.Len()) }

func (l *streaming) alloc() {
	slots := l.p.Sink + l.p.Window
	l.st, l.pos = newStore(l.t, l.s, slots), make([]int32, slots)
}

func (l *streaming) NumSegments() int {
	n := 0
	if l.sinkN > 0 {
		n++
	}
	if l.filled > 0 {
		n++
	}
	return n
}

// span returns the slot range of segment i: the sink segment (if not empty) and then the
// filled part of the ring.
func (l *streaming) span(i int) (lo, hi int) {
	if i < 0 || i >= l.NumSegments() {
		panic(fmt.Sprintf("kvcache: segment %d out of range [0,%d)", i, l.NumSegments()))
	}
	if i == 0 && l.sinkN > 0 {
		return 0, l.sinkN
	}
	return l.p.Sink, l.p.Sink + l.filled
}

func (l *streaming) Segment(i int) (k, v []float32, pos []int32) {
	lo, hi := l.span(i)
	k, v = l.st.f32(lo, hi)
	return k, v, l.pos[lo:hi]
}

func (l *streaming) SegmentQ(i int) (elem int, k, v []byte, ks, vs []float32, pos []int32) {
	lo, hi := l.span(i)
	k, v, ks, vs = l.st.raw(lo, hi)
	return int(l.t), k, v, ks, vs, l.pos[lo:hi]
}

// Append is exactly equivalent to appending the tokens one by one.
func (l *streaming) Append(k, v []float32, pos []int32) {
	if len(pos) == 0 {
		return
	}
	if l.st == nil {
		l.alloc()
	}
	w, sink, win := l.s.Width(), l.p.Sink, l.p.Window
	// Sink first: the first Sink tokens ever appended.
	if m := min(sink-l.sinkN, len(pos)); m > 0 {
		l.st.put(l.sinkN, k[:m*w], v[:m*w])
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
		l.st.put(s, k[:m*w], v[:m*w])
		copy(l.pos[s:], pos[:m])
		l.head = (l.head + m) % win
		l.filled = min(l.filled+m, win)
		k, v, pos = k[m*w:], v[m*w:], pos[m:]
	}
}

// Convert is not supported: a streaming layer has already dropped tokens.
func (l *streaming) Convert(p Policy) (Layer, error) {
	return nil, errorf(ErrPolicy, "convert: already %v", l.p)
}

func (l *streaming) Clone() Layer {
	d := *l
	if l.st != nil {
		d.st, d.pos = l.st.clone(), append([]int32(nil), l.pos...)
	}
	return &d
}

func (l *streaming) Reset() { l.sinkN, l.filled, l.head = 0, 0, 0 }
