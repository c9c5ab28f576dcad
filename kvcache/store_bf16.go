package kvcache

import (
	"encoding/binary"
	"math"
)

// bf16Store keeps keys and values in bfloat16 (little-endian, round to nearest even; NaN
// stays NaN): k and v [slots][Width] of 2 bytes each.
type bf16Store struct {
	w    int
	k, v []byte
}

func newBF16Store(s Shape, slots int) *bf16Store {
	w := s.Width()
	n := 2 * slots * w
	kv := make([]byte, 2*n)
	return &bf16Store{w: w, k: kv[:n:n], v: kv[n:]}
}

// bf16FromFloat32 rounds x to bfloat16 (nearest, ties to even; NaN stays a quiet NaN).
func bf16FromFloat32(x float32) uint16 {
	b := math.Float32bits(x)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40
	}
	return uint16((b + 0x7fff + (b>>16)&1) >> 16)
}

func putBF16(dst []byte, x []float32) {
	dst = dst[:2*len(x)]
	for i, f := range x {
		binary.LittleEndian.PutUint16(dst[2*i:], bf16FromFloat32(f))
	}
}

func (st *bf16Store) put(slot int, k, v []float32) {
	putBF16(st.k[2*slot*st.w:], k)
	putBF16(st.v[2*slot*st.w:], v)
}

func (st *bf16Store) move(dst int, o store, src int) {
	s, b := o.(*bf16Store), 2*st.w
	copy(st.k[dst*b:(dst+1)*b], s.k[src*b:])
	copy(st.v[dst*b:(dst+1)*b], s.v[src*b:])
}

func (st *bf16Store) f32(lo, hi int) (k, v []float32) { return nil, nil }

func (st *bf16Store) raw(lo, hi int) (k, v []byte, ks, vs []float32) {
	b := 2 * st.w
	return st.k[lo*b : hi*b], st.v[lo*b : hi*b], nil, nil
}

func (st *bf16Store) clone() store {
	n := len(st.k)
	kv := make([]byte, 2*n)
	copy(kv, st.k)
	copy(kv[n:], st.v)
	return &bf16Store{w: st.w, k: kv[:n:n], v: kv[n:]}
}
