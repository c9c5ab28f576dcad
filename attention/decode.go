package attention

import (
	"math"
	"sync"
)

// The decode path: one query (n == 1) and 5 to 8 query heads per KV head, head width a
// multiple of 8. A key tile's scores are laid out with the query heads of one KV head in the
// 8 lanes of a row per key ([key][8]), so each key is read once for all its heads, the online
// softmax runs on every head at once, and P·V reads each value once for all heads. Q8 at a
// head width that is a multiple of 32 takes the integer route (decodeq8.go: int16 queries,
// exact int32 dots, P·V weights rounded to 7 bits per tile) on every CPU route, and so does Q4
// (decodeq4.go: channel steps folded into int8 queries once per segment, P·V weights rounded
// to 8 bits per tile); Q8 at other widths is widened to float32 in registers inside the dot
// and P·V loops (portable route) or decoded into L1 like BF16 and Q4 at other widths, which
// are decoded one tile at a time (dequantTile).
// Results do not depend on Threads (each KV head is one work unit). F32, BF16 and Q4 match
// the tiled path of Attend within float32 rounding; the integer Q8 and Q4 routes within their
// rounding of queries and weights (bounded in the tests).

// lanes is the number of query heads a decode row holds (one AVX2 register).
const lanes = 8

// decScratch is one decode work unit's working memory: per KV head of the unit (up to
// kvh), its packed queries, unnormalized outputs and running softmax state.
type decScratch struct {
	qc     []float32 // [kvh][D/8][lanes][8] queries, chunk-major, heads past G zero
	o      []float32 // [kvh][lanes][D] unnormalized outputs
	m, l   [][lanes]float32
	s      []float32 // [keyTile][lanes] scores, then probabilities
	kt, vt []float32 // [keyTile][D] a decoded key and value tile
	mx, sm [lanes]float32
	q8     q8Scratch // the integer Q8 route's buffers (head width a multiple of 32)
	q4     q4Scratch // the integer Q4 route's buffers (head width a multiple of 32)
}

var decPool = sync.Pool{New: func() any { return new(decScratch) }}

func getDecScratch(heads, d int) *decScratch {
	sc := decPool.Get().(*decScratch)
	if cap(sc.qc) < heads*lanes*d {
		sc.qc = make([]float32, heads*lanes*d)
		sc.o = make([]float32, heads*lanes*d)
	}
	if cap(sc.kt) < keyTile*d {
		sc.kt = make([]float32, keyTile*d)
		sc.vt = make([]float32, keyTile*d)
	}
	if cap(sc.m) < heads {
		sc.m = make([][lanes]float32, heads)
		sc.l = make([][lanes]float32, heads)
	}
	if sc.s == nil {
		sc.s = make([]float32, keyTile*lanes)
	}
	sc.qc, sc.o = sc.qc[:heads*lanes*d], sc.o[:heads*lanes*d]
	sc.kt, sc.vt = sc.kt[:keyTile*d], sc.vt[:keyTile*d]
	sc.m, sc.l = sc.m[:heads], sc.l[:heads]
	if d%32 == 0 {
		sc.q8.size(heads, d)
		sc.q4.size(heads, d)
	}
	return sc
}

// decodes reports whether the call takes the decode path.
func (j *job) decodes() bool {
	return j.n == 1 && j.g >= 5 && j.g <= lanes && j.d%8 == 0
}

// work computes work unit u: the decode path for a single query, else the tiled one.
func (j *job) work(u int, sc *scratch) {
	if j.decodes() {
		j.decodeUnit(u)
		return
	}
	j.unit(u, sc)
}

// fusedQ8 reports whether Q8 tiles of this head width are read by the fused kernels (groups
// of 32 on the AVX2 route; the portable kernels take any group size).
func (j *job) fusedQ8() bool {
	return !useAVX2 || j.d%32 == 0
}

// decodeUnit computes the single query of unit u for its KV heads, walking the keys once:
// each key tile is read for every KV head of the unit before the next (whole rows of the
// token-major cache).
func (j *job) decodeUnit(u int) {
	groups := j.kvh / j.gper
	g0 := (u % groups) * j.gper
	G, D := j.g, j.d
	kd := j.kvh * D
	sc := getDecScratch(j.gper, D)
	qp := j.qposAt(0)
	gs, gph := q8Groups(D)
	for gi := range j.gper {
		hq := (g0 + gi) * G // first query head of the KV head
		packQueries(sc.qc[gi*lanes*D:][:lanes*D], j.q[hq*D:][:G*D], G, D, j.scale)
		for h := range lanes {
			sc.m[gi][h], sc.l[gi][h] = negInf, 0
		}
	}
	clear(sc.o)
	intQ8 := D%32 == 0 // the integer Q8 route, on every CPU route
	intQ4 := D%32 == 0 // the integer Q4 route (decodeq4.go), likewise
	qPacked := false
	q4Seg := -1 // the segment the Q4 queries are packed for
	var s seg
	for si, ns := 0, j.numSegs(); si < ns; si++ {
		j.segment(si, &s)
		for k0 := 0; k0 < s.n; k0 += keyTile {
			kn := min(keyTile, s.n-k0)
			kmin, kmax := s.base+int32(k0), s.base+int32(k0+kn-1)
			if s.pos != nil {
				kmin, kmax = posRange(s.pos[k0 : k0+kn])
			}
			cls := classify(j.mask, qp, qp, kmin, kmax)
			if cls == visNone {
				continue
			}
			if s.elem == ElemQ8 && intQ8 && !qPacked {
				for gi := range j.gper {
					sc.q8.query(gi, D).pack(sc.qc[gi*lanes*D:][:lanes*D], D)
				}
				qPacked = true
			}
			if s.elem == ElemQ4 && intQ4 && q4Seg != si {
				j.packQ4(sc, &s, g0, D)
				q4Seg = si
			}
			for gi := range j.gper {
				g := g0 + gi
				qc, o := sc.qc[gi*lanes*D:][:lanes*D], sc.o[gi*lanes*D:][:lanes*D]
				m, l := &sc.m[gi], &sc.l[gi]
				for h := range lanes {
					sc.mx[h] = negInf
				}
				st := sc.s[:kn*lanes]
				off := k0*kd + g*D
				so := k0*j.kvh*gph + g*gph
				var vf []float32 // float32 values (nil: fused Q8)
				vstride := kd
				switch {
				case s.elem == ElemQ4 && intQ4:
					rb := (kd + 1) / 2
					qkHeadsQ4I(st, sc.q4.query(gi, D), s.kb[k0*rb+g*D/2:], s.vb[k0*rb+g*D/2:], D, rb, kn, G, &sc.mx)
				case s.elem == ElemQ8 && intQ8:
					j.q8Next(&sc.q8, &s, si, k0, g)
					qkHeadsQ8I(sc.s, sc.q8.query(gi, D), &sc.q8, s.kb[off:], s.vb[off:], s.ks[so:], D, kd, j.kvh*gph, kn, G, &sc.mx, &sc.q8.next)
				case s.elem == ElemF32:
					qkHeads(st, qc, s.k[off:], s.v[off:], D, kd, kn, G, &sc.mx)
					vf = s.v[off:]
				case s.elem == ElemQ8 && j.fusedQ8():
					qkHeadsQ8(st, qc, s.kb[off:], s.vb[off:], s.ks[so:], D, gs, kd, j.kvh*gph, kn, G, &sc.mx)
				default:
					j.dequantTile(sc.kt, sc.vt, &s, k0, kn, g)
					qkHeads(st, qc, sc.kt, sc.vt, D, D, kn, G, &sc.mx)
					vf, vstride = sc.vt, D
				}
				if cls == visPartial {
					for h := range lanes {
						sc.mx[h] = negInf
					}
					for i := 0; i < kn; i++ {
						row := st[i*lanes:][:lanes]
						if !j.mask.visible(qp, s.at(k0+i)) {
							for h := range row {
								row[h] = negInf
							}
						}
						for h, x := range row {
							sc.mx[h] = max(sc.mx[h], x)
						}
					}
				}
				if sc.mx[0] == negInf {
					break // every lane and KV head shares the query's visibility
				}
				for h := range lanes {
					mn := max(m[h], sc.mx[h])
					if mn != m[h] && m[h] != negInf {
						a := expf(m[h] - mn)
						l[h] *= a
						orow := o[h*D:][:D]
						for i := range orow {
							orow[i] *= a
						}
					}
					m[h] = mn
				}
				if s.elem == ElemQ8 && intQ8 {
					expHeadsQ8(st, kn, m, &sc.sm)
				} else {
					expHeads(st, kn, m, &sc.sm)
				}
				for h := range lanes {
					l[h] += sc.sm[h]
				}
				switch {
				case vf != nil:
					pvHeads(o, st, vf, D, vstride, kn, G)
				case s.elem == ElemQ4:
					j.pvQ4(o, st, &s, k0, kn, g, &sc.q4)
				case intQ8:
					pvHeadsQ8I(o, st, s.vb[off:], s.vs[so:], D, kd, j.kvh*gph, kn, G, &sc.q8)
				default:
					pvHeadsQ8(o, st, s.vb[off:], s.vs[so:], D, gs, kd, j.kvh*gph, kn, G)
				}
			}
		}
	}
	for gi := range j.gper {
		hq := (g0 + gi) * G
		o, m, l := sc.o[gi*lanes*D:][:lanes*D], &sc.m[gi], &sc.l[gi]
		ob := j.out[hq*D:][:G*D]
		for h := range G {
			orow := ob[h*D:][:D]
			if l[h] == 0 {
				clear(orow)
				if j.lse != nil {
					j.lse[hq+h] = negInf
				}
				continue
			}
			inv := 1 / l[h]
			for i, x := range o[h*D:][:D] {
				orow[i] = x * inv
			}
			if j.lse != nil {
				j.lse[hq+h] = m[h] + float32(math.Log(float64(l[h])))
			}
		}
	}
	decPool.Put(sc)
}

// posRange returns the smallest and the largest of pos (not empty).
func posRange(pos []int32) (lo, hi int32) {
	lo, hi = pos[0], pos[0]
	for _, p := range pos[1:] {
		lo, hi = min(lo, p), max(hi, p)
	}
	return lo, hi
}

// packQueries sets qc[c][h][i] = scale·q[h·d + 8c + i] for h < g, 0 for g <= h < lanes:
// the queries of one KV head (g of d floats, d a multiple of 8) in the decode kernels' layout,
// the softmax scale applied once.
func packQueries(qc, q []float32, g, d int, scale float32) {
	for c := 0; c < d/8; c++ {
		blk := qc[c*lanes*8:][:lanes*8]
		for h := range lanes {
			dst := blk[h*8:][:8]
			if h < g {
				for i, x := range q[h*d+c*8:][:8] {
					dst[i] = scale * x
				}
			} else {
				clear(dst)
			}
		}
	}
}

// qkHeads sets s[i][h] = q_h·k_i for i < n, h < lanes (0 for h >= g), key i at
// k[i·stride:][:d], queries qc as packQueries lays them out, and raises mx[h] to the
// largest s[i][h]. The values v (laid out as k) are prefetched for pvHeads.
func qkHeads(s, qc, k, v []float32, d, stride, n, g int, mx *[lanes]float32) {
	if n == 0 {
		return
	}
	_, _ = k[(n-1)*stride+d-1], v[(n-1)*stride+d-1]
	_, _ = s[n*lanes-1], qc[lanes*d-1]
	if useAVX2 {
		qkHeadsAVX(&s[0], &qc[0], &k[0], &v[0], d, stride, n, b2i(g == lanes), &mx[0])
		return
	}
	for i := range n {
		kr := k[i*stride:][:d]
		row := s[i*lanes:][:lanes]
		for h := range lanes {
			if h >= g {
				row[h] = 0
				mx[h] = max(mx[h], 0)
				continue
			}
			var a0, a1, a2, a3 float32
			for c := 0; c < d; c += 8 {
				q := qc[(c/8*lanes+h)*8:][:8]
				x := kr[c:][:8]
				a0 += q[0]*x[0] + q[4]*x[4]
				a1 += q[1]*x[1] + q[5]*x[5]
				a2 += q[2]*x[2] + q[6]*x[6]
				a3 += q[3]*x[3] + q[7]*x[7]
			}
			row[h] = (a0 + a1) + (a2 + a3)
			mx[h] = max(mx[h], row[h])
		}
	}
}

// qkHeadsQ8 is qkHeads over Q8 keys: element e of key i is int8(k[i·stride+e]) times
// ks[i·scStride + e/gs], values v laid out as k. The AVX2 kernel takes gs = 32 and d a
// multiple of 32 only.
func qkHeadsQ8(s, qc []float32, k, v []byte, ks []float32, d, gs, stride, scStride, n, g int, mx *[lanes]float32) {
	if n == 0 {
		return
	}
	_, _ = k[(n-1)*stride+d-1], v[(n-1)*stride+d-1]
	_ = ks[(n-1)*scStride+(d-1)/gs]
	_, _ = s[n*lanes-1], qc[lanes*d-1]
	if useAVX2 {
		if gs != 32 || d%32 != 0 {
			panic("attention: qkHeadsQ8 AVX2 kernel needs groups of 32")
		}
		qkHeadsQ8AVX(&s[0], &qc[0], &k[0], &v[0], &ks[0], d, stride, scStride, n, b2i(g == lanes), &mx[0])
		return
	}
	var kr [8]float32
	for i := range n {
		row := s[i*lanes:][:lanes]
		var acc [lanes][4]float32
		for c := 0; c < d; c += 8 {
			for e := range kr {
				kr[e] = float32(int8(k[i*stride+c+e])) * ks[i*scStride+(c+e)/gs]
			}
			for h := range g {
				q := qc[(c/8*lanes+h)*8:][:8]
				a := &acc[h]
				a[0] += q[0]*kr[0] + q[4]*kr[4]
				a[1] += q[1]*kr[1] + q[5]*kr[5]
				a[2] += q[2]*kr[2] + q[6]*kr[6]
				a[3] += q[3]*kr[3] + q[7]*kr[7]
			}
		}
		for h := range lanes {
			a := acc[h]
			row[h] = (a[0] + a[1]) + (a[2] + a[3])
			mx[h] = max(mx[h], row[h])
		}
	}
}

// expHeads sets s[i][h] = exp(s[i][h] - m[h]) for i < n (every s[i][h] <= m[h], -Inf
// allowed) and sum[h] to the sum over i.
func expHeads(s []float32, n int, m, sum *[lanes]float32) {
	if n == 0 {
		*sum = [lanes]float32{}
		return
	}
	_ = s[n*lanes-1]
	if useAVX2 {
		expHeadsAVX(&s[0], n, &m[0], &sum[0])
		return
	}
	var acc [lanes]float32
	for i := range n {
		row := s[i*lanes:][:lanes]
		for h, x := range row {
			e := expf(x - m[h])
			row[h] = e
			acc[h] += e
		}
	}
	*sum = acc
}

// pvHeads adds Σ_i p[i][h]·v_i to o[h·d:][:d] for h < g (rows g..lanes-1 of o may change
// too), value i at v[i·stride:][:d].
func pvHeads(o, p, v []float32, d, stride, n, g int) {
	if n == 0 {
		return
	}
	_ = v[(n-1)*stride+d-1]
	_, _ = o[lanes*d-1], p[n*lanes-1]
	if useAVX2 {
		if g < lanes && d%16 == 0 {
			pvHeads2AVX(&o[0], &p[0], &v[0], d, stride, n)
			return
		}
		pvHeadsAVX(&o[0], &p[0], &v[0], d, stride, n, b2i(g == lanes))
		return
	}
	for h := range g {
		orow := o[h*d:][:d]
		for i := range n {
			axpy(orow, p[i*lanes+h], v[i*stride:][:d])
		}
	}
}

// pvHeadsQ8 is pvHeads over Q8 values: element e of value i is int8(v[i·stride+e]) times
// vs[i·scStride + e/gs]. The AVX2 kernel takes gs = 32 and d a multiple of 32 only.
func pvHeadsQ8(o, p []float32, v []byte, vs []float32, d, gs, stride, scStride, n, g int) {
	if n == 0 {
		return
	}
	_ = v[(n-1)*stride+d-1]
	_ = vs[(n-1)*scStride+(d-1)/gs]
	_, _ = o[lanes*d-1], p[n*lanes-1]
	if useAVX2 {
		if gs != 32 || d%32 != 0 {
			panic("attention: pvHeadsQ8 AVX2 kernel needs groups of 32")
		}
		pvHeadsQ8AVX(&o[0], &p[0], &v[0], &vs[0], d, stride, scStride, n, b2i(g == lanes))
		return
	}
	for i := range n {
		vr := v[i*stride:][:d]
		sr := vs[i*scStride:]
		for h := range g {
			pi := p[i*lanes+h]
			orow := o[h*d:][:d]
			for e := range orow {
				orow[e] += pi * (float32(int8(vr[e])) * sr[e/gs])
			}
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
