package attention

import "math"

// The integer Q8 decode route (head width a multiple of 32, so Q8 groups are 32 wide), taken
// on every CPU route alike so that results do not depend on the CPU:
//
//   - Q·K: each query head (scale applied) is quantized once per call to int8 in [-127, 127]
//     per group of 32 elements (packQueriesQ8), as the keys are, and each score is Σ over
//     groups of float32(dot)·qscale·kscale with the group's dot product exact in int32.
//   - P·V: per key tile, head and group, the weights w = p·vscale are rounded to integers in
//     [0, 127] relative to the tile's largest (pvHeadsQ8I), the weighted sums of the int8
//     values are exact in int32 and scaled back once per tile. Each weight is off by at most
//     half a step, W/254 for a tile whose largest weight is W.

// q8Scratch is the integer route's working memory for one work unit.
type q8Scratch struct {
	qb  []byte    // [gper][ng][lanes][32] quantized queries
	qbb []byte    // [gper][ng][8][lanes][8][4] their dwords broadcast (AVX2 kernel)
	qs  []float32 // [gper][ng][lanes] their scales
	scr []byte    // the AVX2 score kernel's scratch
	wq  []byte    // [ng][keyTile/4][lanes][4] quantized weights
	f   []float32 // [ng][lanes] their scales
	wf  []float32 // [keyTile][lanes] weights (AVX2 scratch)
	vt  []byte    // [keyTile/4][d/8][32] interleaved values (AVX2 scratch)
	acc []int32   // [lanes][d] integer sums (portable route)
}

func (q *q8Scratch) size(gper, d int) {
	ng := d / 32
	if cap(q.qb) < gper*lanes*d {
		q.qb = make([]byte, gper*lanes*d)
		q.qbb = make([]byte, gper*lanes*d*8)
	}
	if q.scr == nil {
		q.scr = make([]byte, 768)
	}
	if cap(q.qs) < gper*ng*lanes {
		q.qs = make([]float32, gper*ng*lanes)
	}
	if cap(q.wq) < ng*keyTile*lanes {
		q.wq = make([]byte, ng*keyTile*lanes)
		q.f = make([]float32, ng*lanes)
		q.acc = make([]int32, lanes*d)
		q.vt = make([]byte, keyTile*d)
	}
	if q.wf == nil {
		q.wf = make([]float32, keyTile*lanes)
	}
	q.qb, q.qbb = q.qb[:gper*lanes*d], q.qbb[:gper*lanes*d*8]
	q.qs = q.qs[:gper*ng*lanes]
	q.wq, q.f, q.acc, q.vt = q.wq[:ng*keyTile*lanes], q.f[:ng*lanes], q.acc[:lanes*d], q.vt[:keyTile*d]
}

// q8Query is one KV head's quantized queries (packQueriesQ8).
type q8Query struct {
	qb, qbb []byte
	qs      []float32
}

// query returns the quantized queries of the unit's KV head gi (head width d).
func (q *q8Scratch) query(gi, d int) q8Query {
	ng := d / 32
	return q8Query{qb: q.qb[gi*lanes*d:][:lanes*d], qbb: q.qbb[gi*lanes*d*8:][:lanes*d*8],
		qs: q.qs[gi*ng*lanes:][:ng*lanes]}
}

// pack quantizes the packed queries qc (packQueries' layout, d a multiple of 32) with
// packQueriesQ8 and lays their dwords out broadcast for the AVX2 kernel:
// qbb[gi][c][h][j] = dword c of qb[gi][h] for j < 8.
func (y q8Query) pack(qc []float32, d int) {
	packQueriesQ8(y.qb, y.qs, qc, d)
	if !useAVX2 {
		return
	}
	for gi := range d / 32 {
		for c := range 8 {
			blk := y.qbb[(gi*8+c)*lanes*32:][:lanes*32]
			for h := range lanes {
				w := y.qb[(gi*lanes+h)*32+4*c:][:4]
				dst := blk[h*32:][:32]
				for j := 0; j < 32; j += 4 {
					copy(dst[j:j+4], w)
				}
			}
		}
	}
}

// packQueriesQ8 quantizes the packed queries qc (packQueries' layout, d a multiple of 32):
// for group gi of 32 elements and head h, qs[gi][h] = amax/127 (amax the largest |x| of the
// group) and qb[gi][h][e] = round-to-even(x·(127/amax)) in [-127, 127] (0 where amax = 0).
func packQueriesQ8(qb []byte, qs []float32, qc []float32, d int) {
	ng := d / 32
	_, _ = qb[ng*lanes*32-1], qs[ng*lanes-1]
	for gi := range ng {
		for h := range lanes {
			var amax float32
			for c := 4 * gi; c < 4*gi+4; c++ {
				for _, x := range qc[(c*lanes+h)*8:][:8] {
					amax = max(amax, float32(math.Abs(float64(x))))
				}
			}
			dst := qb[(gi*lanes+h)*32:][:32]
			if amax == 0 {
				clear(dst)
				qs[gi*lanes+h] = 0
				continue
			}
			inv := 127 / amax
			for c := range 4 {
				for i, x := range qc[((4*gi+c)*lanes+h)*8:][:8] {
					v := int32(math.RoundToEven(float64(x * inv)))
					dst[8*c+i] = byte(int8(min(max(v, -127), 127)))
				}
			}
			qs[gi*lanes+h] = amax / 127
		}
	}
}

// qkHeadsQ8I sets s[i][h] for i < n, h < lanes to the integer-route score of query head h
// (0 for h >= g) and key i (Q8, groups of 32, element e = int8(k[i·stride+e]) times
// ks[i·scStride + e/32]): Σ over groups of float32(float32(dot)·qs)·ks, the first group's
// term as it is, the others added; queries y as q8Query.pack leaves them; mx[h] is raised to
// the largest s[i][h]. Values v (laid out as k) are prefetched. s needs room for ceil8(n)
// rows (the AVX2 kernel writes copies of row n-1 there). Both routes give the same bits:
// the dots are exact and the float steps are the same.
func qkHeadsQ8I(s []float32, y q8Query, scr []byte, k, v []byte, ks []float32, d, stride, scStride, n, g int, mx *[lanes]float32) {
	if n == 0 {
		return
	}
	ng := d / 32
	_, _ = k[(n-1)*stride+d-1], v[(n-1)*stride+d-1]
	_ = ks[(n-1)*scStride+ng-1]
	_, _, _ = s[(n+7)/8*8*lanes-1], y.qb[ng*lanes*32-1], y.qs[ng*lanes-1]
	if useAVX2 {
		_, _ = y.qbb[ng*8*lanes*32-1], scr[767]
		qkHeadsQ8IAVX(&s[0], &y.qbb[0], &y.qs[0], &k[0], &v[0], &ks[0], d, stride, scStride, n, b2i(g == lanes), &mx[0], &scr[0])
		return
	}
	qb, qs := y.qb, y.qs
	for i := range n {
		row := s[i*lanes:][:lanes]
		kr := k[i*stride:][:d]
		for h := range lanes {
			var acc float32
			if h < g {
				for gi := range ng {
					q := qb[(gi*lanes+h)*32:][:32]
					x := kr[gi*32:][:32]
					var dot int32
					for e, b := range q {
						dot += int32(int8(b)) * int32(int8(x[e]))
					}
					t := float32(float32(dot) * qs[gi*lanes+h])
					t = float32(t * ks[i*scStride+gi])
					if gi == 0 {
						acc = t
					} else {
						acc += t
					}
				}
			}
			row[h] = acc
			mx[h] = max(mx[h], acc)
		}
	}
}

// pvHeadsQ8I adds the integer-route P·V of n keys to o[h][:d] for h < g (rows g..lanes-1
// may change too): for each group gi of 32 columns and head h, w[i] = p[i][h]·vs[i·scStride+gi],
// W = max_i w[i], f = W/127, wq[i] = round-to-even(w[i]·(127/W)) (0 when W = 0), and
// o[h][e] += float32(f·float32(Σ_i wq[i]·int8(v[i·stride+e]))); d a multiple of 32.
func pvHeadsQ8I(o, p []float32, v []byte, vs []float32, d, stride, scStride, n, g int, q *q8Scratch) {
	if n == 0 {
		return
	}
	ng := d / 32
	_ = v[(n-1)*stride+d-1]
	_ = vs[(n-1)*scStride+ng-1]
	_, _ = o[lanes*d-1], p[n*lanes-1]
	if useAVX2 {
		nq := (n + 3) / 4
		_, _, _ = q.wq[ng*nq*32-1], q.vt[nq*4*d-1], q.wf[n*lanes-1]
		pvWeightsQ8AVX(&q.wq[0], &q.f[0], &q.wf[0], &p[0], &vs[0], ng, scStride, n)
		pvTransposeAVX(&q.vt[0], &v[0], d, stride, n)
		pvAccQ8AVX(&o[0], &q.vt[0], &q.wq[0], &q.f[0], d, nq, b2i(g == lanes))
		return
	}
	acc := q.acc[:lanes*d]
	var wq [keyTile]int32
	for gi := range ng {
		for h := range g {
			var W float32
			for i := range n {
				W = max(W, float32(p[i*lanes+h]*vs[i*scStride+gi]))
			}
			var inv float32
			if W > 0 {
				inv = 127 / W
			}
			for i := range n {
				w := float32(p[i*lanes+h] * vs[i*scStride+gi])
				wq[i] = int32(math.RoundToEven(float64(float32(w * inv))))
			}
			a := acc[h*d+gi*32:][:32]
			clear(a)
			for i := range n {
				if wq[i] == 0 {
					continue
				}
				for e, b := range v[i*stride+gi*32:][:32] {
					a[e] += wq[i] * int32(int8(b))
				}
			}
			f := W / 127
			orow := o[h*d+gi*32:][:32]
			for e, x := range a {
				orow[e] += float32(f * float32(x))
			}
		}
	}
}
