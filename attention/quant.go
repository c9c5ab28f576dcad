package attention

import "math"

// dequantTile decodes the keys and values of tokens [k0, k0+kn) of KV head g of the
// reduced-precision segment s into kt and vt ([kn][HeadDim], stride HeadDim).
func (j *job) dequantTile(kt, vt []float32, s *seg, k0, kn, g int) {
	D, kd := j.d, j.kvh*j.d
	off := k0*kd + g*D // first element
	switch s.elem {
	case ElemBF16:
		deqBF16(kt, s.kb[2*off:], D, kd, kn)
		deqBF16(vt, s.vb[2*off:], D, kd, kn)
	case ElemQ8:
		gs, gph := q8Groups(D)
		gpr := j.kvh * gph // scales per token row
		so := k0*gpr + g*gph
		deqQ8(kt, s.kb[off:], s.ks[so:], D, gs, kd, gpr, kn)
		deqQ8(vt, s.vb[off:], s.vs[so:], D, gs, kd, gpr, kn)
	case ElemQ4:
		deqQ4(kt, vt, s, k0, kn, g*D, D, kd, j.kvh)
	}
}

// deqQ4 decodes elements [e0, e0+d) of tokens [k0, k0+n) of the Q4 segment s (rows of kd
// elements, kvh heads of d) into kt and vt ([n][d]): keys by their channel's step and minimum
// over the segment, values by their token's group's.
func deqQ4(kt, vt []float32, s *seg, k0, n, e0, d, kd, kvh int) {
	if n == 0 {
		return
	}
	rb := (kd + 1) / 2
	gs, gph := q8Groups(d)
	ng := kvh * gph
	ks, km := s.ks[e0:e0+d], s.ks[kd+e0:kd+e0+d]
	h := e0 / d
	if useAVX2 && d%8 == 0 && gs%8 == 0 {
		// e0 = h·d is even, so each head's codes start on a byte.
		_ = s.kb[(k0+n-1)*rb+(e0+d)/2-1]
		_ = s.vb[(k0+n-1)*rb+(e0+d)/2-1]
		_ = s.vs[(k0+n-1)*2*ng+ng+h*gph+gph-1]
		_, _ = kt[n*d-1], vt[n*d-1]
		deqQ4KAVX(&kt[0], &s.kb[k0*rb+e0/2], &ks[0], &km[0], d, rb, n)
		deqQ4VAVX(&vt[0], &s.vb[k0*rb+e0/2], &s.vs[k0*2*ng+h*gph], d, gs, rb, 2*ng, ng, n)
		return
	}
	for t := range n {
		tok := k0 + t
		kr, vr := s.kb[tok*rb:][:rb], s.vb[tok*rb:][:rb]
		vs := s.vs[tok*2*ng:][:2*ng]
		ko, vo := kt[t*d:][:d], vt[t*d:][:d]
		for i := range d {
			e := e0 + i
			sh := 4 * (e & 1)
			ko[i] = float32(kr[e/2]>>sh&15)*ks[i] + km[i]
			gi := h*gph + i/gs
			vo[i] = float32(vr[e/2]>>sh&15)*vs[gi] + vs[ng+gi]
		}
	}
}

// deqBF16 sets dst[t][i] = the bfloat16 at src[2·(t·stride+i):] for t < n, i < d.
func deqBF16(dst []float32, src []byte, d, stride, n int) {
	if n == 0 {
		return
	}
	_ = src[2*((n-1)*stride+d)-1]
	_ = dst[n*d-1]
	if useAVX512 && d%16 == 0 {
		deqBF16TileAVX512(&dst[0], &src[0], d, stride, n)
		return
	}
	if useAVX2 && d%8 == 0 {
		deqBF16TileAVX(&dst[0], &src[0], d, stride, n)
		return
	}
	for t := range n {
		row := src[2*t*stride:][:2*d]
		out := dst[t*d:][:d]
		for i := range out {
			out[i] = math.Float32frombits(uint32(row[2*i])<<16 | uint32(row[2*i+1])<<24)
		}
	}
}

// deqQ8 sets dst[t][i] = int8(src[t·stride+i]) · sc[t·scStride + i/gs] for t < n, i < d: one
// head's elements, scale groups of gs from the head's start (the last one possibly shorter).
func deqQ8(dst []float32, src []byte, sc []float32, d, gs, stride, scStride, n int) {
	if n == 0 {
		return
	}
	_ = src[(n-1)*stride+d-1]
	_ = sc[(n-1)*scStride+(d-1)/gs]
	_ = dst[n*d-1]
	if useAVX512 && d%16 == 0 && gs%16 == 0 {
		deqQ8TileAVX512(&dst[0], &src[0], &sc[0], d, gs, stride, scStride, n)
		return
	}
	if useAVX2 && d%8 == 0 && gs%8 == 0 {
		deqQ8TileAVX(&dst[0], &src[0], &sc[0], d, gs, stride, scStride, n)
		return
	}
	for t := range n {
		row := src[t*stride:][:d]
		s := sc[t*scStride:]
		out := dst[t*d:][:d]
		for g0, gi := 0, 0; g0 < d; g0, gi = g0+gs, gi+1 {
			f := s[gi]
			for i := g0; i < min(g0+gs, d); i++ {
				out[i] = float32(int8(row[i])) * f
			}
		}
	}
}
