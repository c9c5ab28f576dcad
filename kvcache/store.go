package kvcache

import "unsafe"

// store holds the keys and values of a fixed number of token slots in one element type; full
// blocks and streaming rings are built on it, so each element type is one file (store_f32.go,
// store_bf16.go, store_q8.go) and the layer kinds do not depend on it.
type store interface {
	// put encodes len(k)/Width tokens into slots [slot, slot+n).
	put(slot int, k, v []float32)
	// move copies slot src of o (a store of the same type and shape) into slot dst, exactly.
	move(dst int, o store, src int)
	// f32 returns slots [lo, hi) of an F32 store ([hi-lo][Width] each); nil for other types.
	f32(lo, hi int) (k, v []float32)
	// raw returns slots [lo, hi) as stored: the encoded elements and, for Q8, the scales
	// ([hi-lo][groups]). For F32 the bytes are the float32 values.
	raw(lo, hi int) (k, v []byte, ks, vs []float32)
	clone() store
}

func newStore(t Type, s Shape, slots int) store {
	switch t {
	case BF16:
		return newBF16Store(s, slots)
	case Q8:
		return newQ8Store(s, slots)
	}
	return newF32Store(s, slots)
}

// float32Bytes views f as its bytes (native order).
func float32Bytes(f []float32) []byte {
	if len(f) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&f[0])), 4*len(f))
}

// reencode returns a store of type t holding the F32 store st's slots, each encoded as put
// would.
func reencode(st store, t Type, s Shape, slots int) store {
	d := newStore(t, s, slots)
	k, v := st.f32(0, slots)
	d.put(0, k, v)
	return d
}

// retype returns a copy of the F32 layer l storing type t, slot for slot (Q4: its tokens
// appended in arrival order to a Q4 layer of the same policy).
func retype(l Layer, t Type) Layer {
	if t == Q4 {
		q := newQ4Layer(shapeOf(l), l.Policy())
		k, v, pos := arrival(l)
		q.Append(k, v, pos)
		return q
	}
	switch l := l.(type) {
	case *full:
		d := &full{s: l.s, t: t, bt: l.bt, n: l.n, blocks: make([]block, len(l.blocks))}
		for j, b := range l.blocks {
			d.blocks[j] = block{st: reencode(b.st, t, l.s, l.bt), pos: append([]int32(nil), b.pos...)}
		}
		return d
	case *streaming:
		d := *l
		d.t = t
		if l.st != nil {
			slots := l.p.Sink + l.p.Window
			d.st, d.pos = reencode(l.st, t, l.s, slots), append([]int32(nil), l.pos...)
		}
		return &d
	}
	panic("kvcache: retype of an unknown layer kind")
}

func shapeOf(l Layer) Shape {
	switch l := l.(type) {
	case *full:
		return l.s
	case *streaming:
		return l.s
	}
	panic("kvcache: shape of an unknown layer kind")
}

// arrival returns an F32 layer's tokens in arrival order.
func arrival(l Layer) (k, v []float32, pos []int32) {
	switch l := l.(type) {
	case *full:
		for i := range l.NumSegments() {
			sk, sv, sp := l.Segment(i)
			k, v, pos = append(k, sk...), append(v, sv...), append(pos, sp...)
		}
	case *streaming:
		if l.st == nil {
			return nil, nil, nil
		}
		w := l.s.Width()
		sk, sv := l.st.f32(0, l.sinkN)
		k, v, pos = append(k, sk...), append(v, sv...), append(pos, l.pos[:l.sinkN]...)
		start := 0
		if l.filled == l.p.Window {
			start = l.head
		}
		for j := range l.filled {
			slot := l.p.Sink + (start+j)%l.p.Window
			rk, rv := l.st.f32(slot, slot+1)
			k, v, pos = append(k, rk[:w]...), append(v, rv[:w]...), append(pos, l.pos[slot])
		}
	}
	return k, v, pos
}
