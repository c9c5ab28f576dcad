package kvcache

import "fmt"

// streaming is a layer that keeps the first Sink tokens ever appended (the sink segment,
// slots [0, Sink)) and the most recent Window tokens (a ring, slots [Sink, Sink+Window),
// oldest overwritten), in float32. Its Sink+Window slots are allocated on the first append.
// With Sink 0 it is a plain sliding window.
type streaming struct {
	w      int
	p      Policy
	k, v   []float32 // [Sink+Window][w], nil until first append
	pos    []int32   // [Sink+Window]
	sinkN  int       // sink slots filled
	filled int       // ring slots filled
	head   int       // next ring slot to write (relative to the ring start)
}

var _ Layer = (*streaming)(nil)

func newStreaming(width int, p Policy) *streaming { return &streaming{w: width, p: p} }

func (l *streaming) Policy() Policy { return l.p }
func (l *streaming) Len() int       { return l.sinkN + l.filled }

func (l *streaming) Capacity() int {
	if l.k == nil {
		return 0
	}
	return l.p.Sink + l.p.Window
}

func (l *streaming) Bytes() int64     { return int64(l.Capacity()) * slotBytes(l.w) }
func (l *streaming) DataBytes() int64 { return int64(l.Len()) * 2 * int64(l.w) * 4 }

func (l *streaming) alloc() {
	slots := l.p.Sink + l.p.Window
	n := slots * l.w
	kv := make([]float32, 2*n)
	l.k, l.v, l.pos = kv[:n:n], kv[n:], make([]int32, slots)
}

// put stores one token in slot s.
func (l *streaming) put(s int, k, v []float32, pos int32) {
	copy(l.k[s*l.w:(s+1)*l.w], k)
	copy(l.v[s*l.w:(s+1)*l.w], v)
	l.pos[s] = pos
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

// Segment returns the sink segment (if not empty) and then the filled part of the ring.
func (l *streaming) Segment(i int) (k, v []float32, pos []int32) {
	if i < 0 || i >= l.NumSegments() {
		panic(fmt.Sprintf("kvcache: segment %d out of range [0,%d)", i, l.NumSegments()))
	}
	w := l.w
	if i == 0 && l.sinkN > 0 {
		return l.k[:l.sinkN*w], l.v[:l.sinkN*w], l.pos[:l.sinkN]
	}
	s, e := l.p.Sink, l.p.Sink+l.filled
	return l.k[s*w : e*w], l.v[s*w : e*w], l.pos[s:e]
}

// Append is exactly equivalent to appending the tokens one by one.
func (l *streaming) Append(k, v []float32, pos []int32) {
	if len(pos) == 0 {
		return
	}
	if l.k == nil {
		l.alloc()
	}
	w, sink, win := l.w, l.p.Sink, l.p.Window
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

// Convert is not supported: a streaming layer has already dropped tokens.
func (l *streaming) Convert(p Policy) (Layer, error) {
	return nil, errorf(ErrPolicy, "convert: already %v", l.p)
}

func (l *streaming) Clone() Layer {
	d := *l
	if l.k != nil {
		n := len(l.k)
		kv := make([]float32, 2*n)
		copy(kv, l.k)
		copy(kv[n:], l.v)
		d.k, d.v, d.pos = kv[:n:n], kv[n:], append([]int32(nil), l.pos...)
	}
	return &d
}

func (l *streaming) Reset() { l.sinkN, l.filled, l.head = 0, 0, 0 }
