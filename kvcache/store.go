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

// retype returns a copy of the F32 layer l storing type t, slot for slot.
func retype(l Layer, t Type) Layer {
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
