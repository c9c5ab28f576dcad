package attention

import (
	"math"
	"sync"
)

// scratch is one goroutine's working memory for a work unit.
type scratch struct {
	s    []float32 // [rows][keyTile] scores, then probabilities
	m, l []float32 // [rows] running max and running sum
	cls  []uint8   // [queries per tile] visibility class of the current key tile
	kt   []float32 // [keyTile][HeadDim] keys of one KV head, dequantized
	vt   []float32 // [keyTile][HeadDim] values of one KV head, dequantized
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func getScratch(j *job) *scratch {
	sc := scratchPool.Get().(*scratch)
	rows := j.tq * j.g * j.gper
	if cap(sc.s) < rows*keyTile {
		sc.s = make([]float32, rows*keyTile)
	}
	if cap(sc.m) < rows {
		sc.m = make([]float32, rows)
		sc.l = make([]float32, rows)
	}
	if cap(sc.cls) < j.tq {
		sc.cls = make([]uint8, j.tq)
	}
	if cap(sc.kt) < keyTile*j.d {
		sc.kt = make([]float32, keyTile*j.d)
		sc.vt = make([]float32, keyTile*j.d)
	}
	sc.s, sc.m, sc.l, sc.cls = sc.s[:rows*keyTile], sc.m[:rows], sc.l[:rows], sc.cls[:j.tq]
	sc.kt, sc.vt = sc.kt[:keyTile*j.d], sc.vt[:keyTile*j.d]
	return sc
}

// Visibility classes of a (query range × key range) block.
const (
	visNone = iota
	visPartial
	visAll
)

// classify tells whether keys with positions in [kmin, kmax] are invisible to
// every query with position in [qmin, qmax], all visible, or mixed.
func classify(m mask, qmin, qmax, kmin, kmax int32) int {
	if kmin > qmax {
		return visNone
	}
	sink, win := int64(m.sink), int64(m.window)
	if win > 0 && int64(kmin) >= sink && int64(kmax) <= int64(qmin)-win {
		return visNone
	}
	if kmax <= qmin && (win == 0 || int64(kmin) > int64(qmax)-win || int64(kmax) < sink) {
		return visAll
	}
	return visPartial
}

var negInf = float32(math.Inf(-1))

// unit computes one work unit: query tile u/groups for KV heads
// [g0, g0+j.gper) with g0 = (u%groups)·gper. Each (query, head) row sees the
// same key tiles in the same order whatever the unit shape, so results do not
// depend on how work is split.
func (j *job) unit(u int, sc *scratch) {
	groups := j.kvh / j.gper
	qt, g0 := u/groups, (u%groups)*j.gper
	g1 := g0 + j.gper
	G, D := j.g, j.d
	hd, kd := j.heads*D, j.kvh*D
	R := j.gper * G // rows per query: heads g0·G .. g1·G-1
	h0 := g0 * G
	t0 := qt * j.tq
	nq := min(j.tq, j.n-t0)
	rows := nq * R
	m, l := sc.m[:rows], sc.l[:rows]
	qmin, qmax := j.qposAt(t0), j.qposAt(t0)
	for ti := 0; ti < nq; ti++ {
		qp := j.qposAt(t0 + ti)
		qmin, qmax = min(qmin, qp), max(qmax, qp)
		clear(j.out[(t0+ti)*hd+h0*D:][:R*D])
	}
	for r := range m {
		m[r], l[r] = negInf, 0
	}
	scale := j.scale
	var s seg
	for si, ns := 0, j.numSegs(); si < ns; si++ {
		j.segment(si, &s)
		for k0 := 0; k0 < s.n; k0 += keyTile {
			kn := min(keyTile, s.n-k0)
			kmin, kmax := s.at(k0), s.at(k0)
			for i := 1; i < kn; i++ {
				p := s.at(k0 + i)
				kmin, kmax = min(kmin, p), max(kmax, p)
			}
			cls := classify(j.mask, qmin, qmax, kmin, kmax)
			if cls == visNone {
				continue
			}
			for ti := 0; ti < nq; ti++ {
				c := cls
				if c == visPartial {
					c = classify(j.mask, j.qposAt(t0+ti), j.qposAt(t0+ti), kmin, kmax)
				}
				sc.cls[ti] = uint8(c)
			}
			for g := g0; g < g1; g++ {
				var kb, vb []float32
				stride := kd
				if s.elem == ElemF32 {
					kb, vb = s.k[k0*kd+g*D:], s.v[k0*kd+g*D:]
				} else {
					// Reduced precision: this head's key tile, decoded once into L1 for all
					// G query heads and every query of the tile.
					j.dequantTile(sc.kt, sc.vt, &s, k0, kn, g)
					kb, vb, stride = sc.kt, sc.vt, D
				}
				hg := (g - g0) * G // first row of this KV head within a query's rows
				// Scores for every (query, head) row of the tile.
				for ti := 0; ti < nq; ti++ {
					c := int(sc.cls[ti])
					if c == visNone {
						continue
					}
					qr := j.q[(t0+ti)*hd+(h0+hg)*D:]
					rs := sc.s[(ti*R+hg)*keyTile:]
					gi := 0
					for ; gi+2 <= G; gi += 2 {
						scores2(rs[gi*keyTile:][:kn], rs[(gi+1)*keyTile:][:kn], qr[gi*D:][:D], qr[(gi+1)*D:][:D], kb, stride, scale)
					}
					if gi < G {
						scores(rs[gi*keyTile:][:kn], qr[gi*D:][:D], kb, stride, scale)
					}
					if c == visPartial {
						qp := j.qposAt(t0 + ti)
						for i := 0; i < kn; i++ {
							if !j.mask.visible(qp, s.at(k0+i)) {
								for gi := 0; gi < G; gi++ {
									rs[gi*keyTile+i] = negInf
								}
							}
						}
					}
				}
				// Online softmax update and P·V.
				for ti := 0; ti < nq; ti++ {
					if sc.cls[ti] == visNone {
						continue
					}
					ob := j.out[(t0+ti)*hd+(h0+hg)*D:]
					for gi := 0; gi < G; gi++ {
						r := ti*R + hg + gi
						j.update(sc.s[r*keyTile:][:keyTile], kn, &m[r], &l[r], ob[gi*D:][:D], vb, stride)
					}
				}
			}
		}
	}
	// Normalize and write the log-sum-exp.
	for ti := 0; ti < nq; ti++ {
		t := t0 + ti
		ob := j.out[t*hd+h0*D:]
		for hr := 0; hr < R; hr++ {
			r := ti*R + hr
			if l[r] == 0 {
				if j.lse != nil {
					j.lse[t*j.heads+h0+hr] = negInf
				}
				continue
			}
			inv := 1 / l[r]
			orow := ob[hr*D:][:D]
			for i := range orow {
				orow[i] *= inv
			}
			if j.lse != nil {
				j.lse[t*j.heads+h0+hr] = m[r] + float32(math.Log(float64(l[r])))
			}
		}
	}
}

// update folds one key tile into a row's running softmax: buf holds the
// row's kn scores (room for keyTile), m and l the running max and sum, orow
// the unnormalized output, values at vb with the given stride.
func (j *job) update(buf []float32, kn int, m, l *float32, orow, vb []float32, stride int) {
	row := buf[:kn]
	var full []float32 // row padded with -Inf to a multiple of 8 (AVX2 path)
	mx := negInf
	if useAVX2 {
		full = buf[:(kn+7)&^7]
		for i := kn; i < len(full); i++ {
			full[i] = negInf
		}
		mx = maxAVX(&full[0], len(full))
	} else {
		for _, x := range row {
			mx = max(mx, x)
		}
	}
	if mx == negInf {
		return
	}
	mold := *m
	mnew := max(mold, mx)
	if mold != mnew && mold != negInf {
		alpha := expf(mold - mnew)
		*l *= alpha
		for i := range orow {
			orow[i] *= alpha
		}
	}
	*m = mnew
	var sum float32
	if useAVX2 {
		sum = expTileAVX(&full[0], len(full), mnew)
	} else {
		for i, x := range row {
			e := expf(x - mnew)
			row[i] = e
			sum += e
		}
	}
	*l += sum
	pv(orow, row, vb, stride)
}

// expf is exp in float32 (float64 math rounded once).
func expf(x float32) float32 {
	return float32(math.Exp(float64(x)))
}

// scores sets dst[i] = scale · q·k_i for len(dst) keys, key i at k[i*stride:][:len(q)].
func scores(dst, q, k []float32, stride int, scale float32) {
	d := len(q)
	n := len(dst)
	i := 0
	if useAVX2 && d%8 == 0 && n >= 4 {
		i = n &^ 3
		_ = k[(i-1)*stride+d-1] // the assembly reads keys 0..i-1
		dotTileAVX(&dst[0], &q[0], &k[0], d, stride, i, scale)
	}
	for ; i+4 <= n; i += 4 {
		s0, s1, s2, s3 := dot4(q, k[i*stride:][:d], k[(i+1)*stride:][:d], k[(i+2)*stride:][:d], k[(i+3)*stride:][:d])
		dst[i], dst[i+1], dst[i+2], dst[i+3] = s0*scale, s1*scale, s2*scale, s3*scale
	}
	for ; i < n; i++ {
		dst[i] = dot(q, k[i*stride:][:d]) * scale
	}
}

// scores2 is scores for two query rows over the same keys (each key row is
// read once); both rows get bit-identical results to any other scores2 call
// on the same data.
func scores2(dst0, dst1, q0, q1, k []float32, stride int, scale float32) {
	d := len(q0)
	n := len(dst0)
	if !useAVX2 || d%8 != 0 || n < 4 {
		scores(dst0, q0, k, stride, scale)
		scores(dst1, q1, k, stride, scale)
		return
	}
	dst1, q1 = dst1[:n], q1[:d]
	i := n &^ 3
	_ = k[(i-1)*stride+d-1] // the assembly reads keys 0..i-1
	dot2TileAVX(&dst0[0], &dst1[0], &q0[0], &q1[0], &k[0], d, stride, i, scale)
	for ; i < n; i++ {
		dst0[i] = dot(q0, k[i*stride:][:d]) * scale
		dst1[i] = dot(q1, k[i*stride:][:d]) * scale
	}
}

// dot4 returns q·a, q·b, q·c, q·e; all have len(q) elements.
func dot4(q, a, b, c, e []float32) (s0, s1, s2, s3 float32) {
	a, b, c, e = a[:len(q)], b[:len(q)], c[:len(q)], e[:len(q)]
	for i, x := range q {
		s0 += x * a[i]
		s1 += x * b[i]
		s2 += x * c[i]
		s3 += x * e[i]
	}
	return
}

// dot returns a·b with four partial sums.
func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// pv adds Σ_i p[i]·v_i to o, value i at v[i*stride:][:len(o)].
func pv(o, p, v []float32, stride int) {
	d := len(o)
	n := len(p)
	i := 0
	if useAVX2 && d%8 == 0 && n > 0 {
		_ = v[(n-1)*stride+d-1] // the assembly reads values 0..n-1
		pvTileAVX(&o[0], &p[0], &v[0], d, stride, n)
		return
	}
	for ; i+4 <= n; i += 4 {
		axpy4(o, p[i], p[i+1], p[i+2], p[i+3], v[i*stride:][:d], v[(i+1)*stride:][:d], v[(i+2)*stride:][:d], v[(i+3)*stride:][:d])
	}
	for ; i < n; i++ {
		axpy(o, p[i], v[i*stride:][:d])
	}
}

// axpy4 adds p0·a + p1·b + p2·c + p3·e to o.
func axpy4(o []float32, p0, p1, p2, p3 float32, a, b, c, e []float32) {
	a, b, c, e = a[:len(o)], b[:len(o)], c[:len(o)], e[:len(o)]
	for i := range o {
		o[i] += p0*a[i] + p1*b[i] + p2*c[i] + p3*e[i]
	}
}

// axpy adds p·a to o.
func axpy(o []float32, p float32, a []float32) {
	a = a[:len(o)]
	for i := range o {
		o[i] += p * a[i]
	}
}
