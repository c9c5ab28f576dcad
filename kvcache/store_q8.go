package kvcache

import "math"

// q8Store keeps keys and values as int8 with one float32 scale per group of GroupSize
// consecutive elements of a token's head (symmetric: x ≈ q·scale, scale = max|x|/127):
// k and v [slots][Width] bytes, ks and vs [slots][groups] scales.
type q8Store struct {
	s      Shape
	w, g   int // width, scale groups per row
	k, v   []byte
	ks, vs []float32
}

func newQ8Store(s Shape, slots int) *q8Store {
	w, g := s.Width(), groups(s)
	n, ns := slots*w, slots*g
	kv := make([]byte, 2*n)
	sc := make([]float32, 2*ns)
	return &q8Store{s: s, w: w, g: g, k: kv[:n:n], v: kv[n:], ks: sc[:ns:ns], vs: sc[ns:]}
}

// quantizeQ8 encodes x (one token's row of heads of headDim elements) into q (len(x) bytes,
// int8 two's complement) and scales (one per group of GroupSize(headDim) elements of a head,
// the last group of a head possibly shorter): scale = max|x|/127 over the group and
// q = round(x/scale) (half away from zero), 0 where the group is all zero. Dequantized,
// x ≈ int8(q)·scale with |error| <= scale/2.
func quantizeQ8(q []byte, scales []float32, x []float32, headDim int) {
	gs := GroupSize(headDim)
	si := 0
	for h := 0; h < len(x); h += headDim {
		for g := h; g < h+headDim; g += gs {
			e := min(g+gs, h+headDim)
			var amax float32
			for _, f := range x[g:e] {
				amax = max(amax, float32(math.Abs(float64(f))))
			}
			sc := amax / 127
			scales[si] = sc
			si++
			if sc == 0 {
				clear(q[g:e])
				continue
			}
			inv := 1 / sc
			for i := g; i < e; i++ {
				r := math.Round(float64(x[i] * inv))
				q[i] = byte(int8(max(-127, min(127, r))))
			}
		}
	}
}

func (st *q8Store) put(slot int, k, v []float32) {
	w, g, hd := st.w, st.g, st.s.HeadDim
	for t := 0; t*w < len(k); t++ {
		s := slot + t
		quantizeQ8(st.k[s*w:(s+1)*w], st.ks[s*g:(s+1)*g], k[t*w:(t+1)*w], hd)
		quantizeQ8(st.v[s*w:(s+1)*w], st.vs[s*g:(s+1)*g], v[t*w:(t+1)*w], hd)
	}
}

func (st *q8Store) move(dst int, o store, src int) {
	s, w, g := o.(*q8Store), st.w, st.g
	copy(st.k[dst*w:(dst+1)*w], s.k[src*w:])
	copy(st.v[dst*w:(dst+1)*w], s.v[src*w:])
	copy(st.ks[dst*g:(dst+1)*g], s.ks[src*g:])
	copy(st.vs[dst*g:(dst+1)*g], s.vs[src*g:])
}

func (st *q8Store) f32(lo, hi int) (k, v []float32) { return nil, nil }

func (st *q8Store) raw(lo, hi int) (k, v []byte, ks, vs []float32) {
	w, g := st.w, st.g
	return st.k[lo*w : hi*w], st.v[lo*w : hi*w], st.ks[lo*g : hi*g], st.vs[lo*g : hi*g]
}

func (st *q8Store) clone() store {
	d := newQ8Store(st.s, len(st.k)/st.w)
	copy(d.k, st.k)
	copy(d.v, st.v)
	copy(d.ks, st.ks)
	copy(d.vs, st.vs)
	return d
}
