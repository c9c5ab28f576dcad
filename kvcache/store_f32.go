package kvcache

// f32Store keeps keys and values in float32: k and v [slots][Width].
type f32Store struct {
	w    int
	k, v []float32
}

func newF32Store(s Shape, slots int) *f32Store {
	w := s.Width()
	n := slots * w
	kv := make([]float32, 2*n)
	return &f32Store{w: w, k: kv[:n:n], v: kv[n:]}
}

func (st *f32Store) put(slot int, k, v []float32) {
	copy(st.k[slot*st.w:], k)
	copy(st.v[slot*st.w:], v)
}

func (st *f32Store) move(dst int, o store, src int) {
	s, w := o.(*f32Store), st.w
	copy(st.k[dst*w:(dst+1)*w], s.k[src*w:])
	copy(st.v[dst*w:(dst+1)*w], s.v[src*w:])
}

func (st *f32Store) f32(lo, hi int) (k, v []float32) {
	return st.k[lo*st.w : hi*st.w], st.v[lo*st.w : hi*st.w]
}

func (st *f32Store) raw(lo, hi int) (k, v []byte, ks, vs []float32) {
	kf, vf := st.f32(lo, hi)
	return float32Bytes(kf), float32Bytes(vf), nil, nil
}

func (st *f32Store) clone() store {
	n := len(st.k)
	kv := make([]float32, 2*n)
	copy(kv, st.k)
	copy(kv[n:], st.v)
	return &f32Store{w: st.w, k: kv[:n:n], v: kv[n:]}
}
