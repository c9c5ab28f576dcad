package kvcache

import "fmt"

// full is a layer that keeps every token in float32, in blocks of bt tokens allocated as the
// layer grows (never token by token). Segments are the blocks in use, in arrival order.
type full struct {
	w, bt  int
	n      int     // tokens held
	blocks []block // allocated blocks; the first ceil(n/bt) are in use
}

// block is one storage block of a full layer.
type block struct {
	k, v []float32 // [bt][w]
	pos  []int32   // [bt]
}

var _ Layer = (*full)(nil)

func newFull(width, bt int) *full { return &full{w: width, bt: bt} }

func (l *full) Policy() Policy { return Full() }
func (l *full) Len() int       { return l.n }
func (l *full) Capacity() int  { return len(l.blocks) * l.bt }
func (l *full) Bytes() int64   { return int64(l.Capacity()) * slotBytes(l.w) }
func (l *full) DataBytes() int64 {
	return int64(l.n) * 2 * int64(l.w) * 4
}

func (l *full) NumSegments() int { return (l.n + l.bt - 1) / l.bt }

func (l *full) Segment(i int) (k, v []float32, pos []int32) {
	if i < 0 || i >= l.NumSegments() {
		panic(fmt.Sprintf("kvcache: segment %d out of range [0,%d)", i, l.NumSegments()))
	}
	b := &l.blocks[i]
	m := min(l.bt, l.n-i*l.bt)
	return b.k[:m*l.w], b.v[:m*l.w], b.pos[:m]
}

func (l *full) Append(k, v []float32, pos []int32) {
	w, bt := l.w, l.bt
	for len(pos) > 0 {
		bi, off := l.n/bt, l.n%bt
		if bi == len(l.blocks) {
			l.blocks = append(l.blocks, l.newBlock())
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

func (l *full) newBlock() block {
	n := l.bt * l.w
	kv := make([]float32, 2*n)
	return block{k: kv[:n:n], v: kv[n:], pos: make([]int32, l.bt)}
}

// token returns token i in arrival order.
func (l *full) token(i int) (k, v []float32, pos int32) {
	b := &l.blocks[i/l.bt]
	o := i % l.bt
	return b.k[o*l.w : (o+1)*l.w], b.v[o*l.w : (o+1)*l.w], b.pos[o]
}

// Convert to a streaming policy keeps the first p.Sink and the last p.Window−1 tokens in
// arrival order (one ring slot stays free for the next token) and drops the blocks, so the
// bytes fall at once. Later appends behave as if the layer had been streaming from the start.
func (l *full) Convert(p Policy) (Layer, error) {
	if !p.IsStreaming() {
		return nil, errorf(ErrPolicy, "convert to %v: only full → streaming is supported", p)
	}
	s := newStreaming(l.w, p)
	if l.n > 0 {
		s.alloc()
		s.sinkN = min(p.Sink, l.n)
		for i := range s.sinkN {
			k, v, pos := l.token(i)
			s.put(i, k, v, pos)
		}
		for i := max(s.sinkN, l.n-(p.Window-1)); i < l.n; i++ {
			k, v, pos := l.token(i)
			s.put(p.Sink+s.filled, k, v, pos)
			s.filled++
		}
		s.head = s.filled % p.Window
	}
	clear(l.blocks)
	*l = full{w: l.w, bt: l.bt}
	return s, nil
}

func (l *full) Clone() Layer {
	d := &full{w: l.w, bt: l.bt, n: l.n}
	if l.blocks != nil {
		d.blocks = make([]block, len(l.blocks))
		for j, b := range l.blocks {
			nb := d.newBlock()
			copy(nb.k, b.k)
			copy(nb.v, b.v)
			copy(nb.pos, b.pos)
			d.blocks[j] = nb
		}
	}
	return d
}

func (l *full) Reset() { l.n = 0 }
