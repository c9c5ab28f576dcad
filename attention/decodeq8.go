package attention

import (
	"math"
	"unsafe"
)

// The integer Q8 decode route (head width a multiple of 32, so Q8 groups are 32 wide), taken
// on every CPU route alike so that results do not depend on the CPU:
//
//   - Q·K: each query head (scale applied) is quantized once per call to int16 in
//     [-32767, 32767] per group of 32 elements (packQueriesQ8: a relative step of 3e-5, far
//     below the keys' 8 bits), and each score is Σ over groups of float32(dot)·qscale·kscale
//     with the group's dot product exact in int32.
//   - P·V: per key tile, head and group, the weights w = p·vscale are rounded to integers in
//     [0, 127] relative to the tile's largest (pvHeadsQ8I), the weighted sums of the int8
//     values are exact in int32 and scaled back once per tile. Each weight is off by at most
//     half a step, W/254 for a tile whose largest weight is W.

// q8Scratch is the integer route's working memory for one work unit.
type q8Scratch struct {
	qb  []int16   // [gper][ng][lanes][32] quantized queries
	qbb []int16   // [gper][ng][8][2][lanes][8][2] their element pairs broadcast (AVX2 kernel)
	qs  []float32 // [gper][ng][lanes] their scales
	scr []byte    // the AVX2 score kernel's scratch

	next q8Rows    // the rows the AVX2 score kernel prefetches (q8Next)
	nseg seg       // q8Next's look at the next segment
	wq   []byte    // [ng][keyTile/4][lanes][4] quantized weights
	f    []float32 // [ng][lanes] their scales
	wf   []float32 // [keyTile][lanes] weights (AVX2 scratch; first the tail scales of Q·K)
	vt   []byte    // [keyTile/4][d/8][32] interleaved values (AVX2 scratch; first the tail keys of Q·K)
	acc  []int32   // [lanes][d] integer sums (portable route)
}

func (q *q8Scratch) size(gper, d int) {
	ng := d / 32
	if cap(q.qb) < gper*lanes*d {
		q.qb = make([]int16, gper*lanes*d)
		q.qbb = make([]int16, gper*lanes*d*8)
	}
	if q.scr == nil {
		q.scr = make([]byte, 288)
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
	qb, qbb []int16
	qs      []float32
}

// query returns the quantized queries of the unit's KV head gi (head width d).
func (q *q8Scratch) query(gi, d int) q8Query {
	ng := d / 32
	return q8Query{qb: q.qb[gi*lanes*d:][:lanes*d], qbb: q.qbb[gi*lanes*d*8:][:lanes*d*8],
		qs: q.qs[gi*ng*lanes:][:ng*lanes]}
}

// pack quantizes the packed queries qc (packQueries' layout, d a multiple of 32) with
// packQueriesQ8 and lays their element pairs out broadcast for the AVX2 kernel:
// qbb[gi][c][t][h][j] = (qb[gi][h][4c+2t], qb[gi][h][4c+2t+1]) for j < 8.
func (y q8Query) pack(qc []float32, d int) {
	packQueriesQ8(y.qb, y.qs, qc, d)
	if !useAVX2 {
		return
	}
	for gi := range d / 32 {
		for c := range 8 {
			for t := range 2 {
				blk := y.qbb[((gi*8+c)*2+t)*lanes*16:][:lanes*16]
				for h := range lanes {
					pr := y.qb[(gi*lanes+h)*32+4*c+2*t:][:2]
					dst := blk[h*16:][:16]
					for j := 0; j < 16; j += 2 {
						dst[j], dst[j+1] = pr[0], pr[1]
					}
				}
			}
		}
	}
}

// qLevels is the largest query integer of the integer Q8 route; a group's dot product is
// at most 32·128·qLevels < 2^31.
const qLevels = 32767

// packQueriesQ8 quantizes the packed queries qc (packQueries' layout, d a multiple of 32):
// for group gi of 32 elements and head h, qs[gi][h] = amax/qLevels (amax the largest |x| of the
// group) and qb[gi][h][e] = round-to-even(x·(qLevels/amax)) in [-qLevels, qLevels] (0 where
// amax = 0).
func packQueriesQ8(qb []int16, qs []float32, qc []float32, d int) {
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
			inv := qLevels / amax
			for c := range 4 {
				for i, x := range qc[((4*gi+c)*lanes+h)*8:][:8] {
					v := int32(math.RoundToEven(float64(x * inv)))
					dst[8*c+i] = int16(min(max(v, -qLevels), qLevels))
				}
			}
			qs[gi*lanes+h] = amax / qLevels
		}
	}
}

// q8Rows is a Q8 tile's key and value rows and scales (nil where there is none).
type q8Rows struct {
	k, v   []byte
	ks, vs []float32
}

// byteOffset returns p - base in bytes (for prefetch addresses only; p may lie in another
// allocation).
func byteOffset[T any](p, base *T) int {
	return int(uintptr(unsafe.Pointer(p)) - uintptr(unsafe.Pointer(base)))
}

// q8Next sets q.next to the rows of KV head g that follow the tile at k0 of segment s (index
// si): the next tile of s, else the first of the next segment when it is Q8 and not empty,
// else none.
func (j *job) q8Next(q *q8Scratch, s *seg, si, k0, g int) {
	r := &q.next
	kd := j.kvh * j.d
	_, gph := q8Groups(j.d)
	t, t0 := s, k0+keyTile
	if t0 >= s.n {
		*r = q8Rows{}
		if si+1 >= j.numSegs() {
			return
		}
		j.segment(si+1, &q.nseg)
		t, t0 = &q.nseg, 0
		if t.elem != ElemQ8 || t.n == 0 {
			return
		}
	}
	off, so := t0*kd+g*j.d, t0*j.kvh*gph+g*gph
	*r = q8Rows{k: t.kb[off:], v: t.vb[off:], ks: t.ks[so:], vs: t.vs[so:]}
}

// qkHeadsQ8I sets s[i][h] for i < n, h < lanes to the integer-route score of query head h
// (0 for h >= g) and key i (Q8, groups of 32, element e = int8(k[i·stride+e]) times
// ks[i·scStride + e/32]): Σ over groups of float32(float32(dot)·qs)·ks, the first group's
// term as it is, the others added; queries y as q8Query.pack leaves them; mx[h] is raised to
// the largest s[i][h]. Values v (laid out as k) are prefetched, and so are the rows of next
// (nil or empty: none) on the AVX2 route. s needs room for ceil8(n)
// rows (the AVX2 kernel writes copies of row n-1 there). Both routes give the same bits:
// the dots are exact and the float steps are the same. The AVX2 kernel takes whole blocks of
// eight keys in place and the last n%8 from a copy padded with key n-1 (q's scratch).
func qkHeadsQ8I(s []float32, y q8Query, q *q8Scratch, k, v []byte, ks []float32, d, stride, scStride, n, g int, mx *[lanes]float32, next *q8Rows) {
	if n == 0 {
		return
	}
	ng := d / 32
	_, _ = k[(n-1)*stride+d-1], v[(n-1)*stride+d-1]
	_ = ks[(n-1)*scStride+ng-1]
	_, _, _ = s[(n+7)/8*8*lanes-1], y.qb[ng*lanes*32-1], y.qs[ng*lanes-1]
	if useAVX2 {
		scr := q.scr
		_, _ = y.qbb[ng*8*lanes*32-1], scr[287]
		h8 := b2i(g == lanes)
		nb := n / 8
		if nb > 0 {
			var pfk, pfv, pfks, pfvs int // the next tile's rows, as offsets from this one's
			if next != nil && len(next.k) > 0 {
				pfk, pfv = byteOffset(&next.k[0], &k[0]), byteOffset(&next.v[0], &k[0])
				pfks, pfvs = byteOffset(&next.ks[0], &ks[0]), byteOffset(&next.vs[0], &ks[0])
			}
			qkHeadsQ8IAVX(&s[0], &y.qbb[0], &y.qs[0], &k[0], &v[0], &ks[0], d, stride, scStride, nb, pfk, pfv, pfks, pfvs, h8, &mx[0], &scr[0])
		}
		if n > 8*nb {
			tk, tks := q.vt[:8*d], q.wf[:8*ng] // free until P·V
			for i := range 8 {
				src := min(8*nb+i, n-1)
				copy(tk[i*d:][:d], k[src*stride:][:d])
				copy(tks[i*ng:][:ng], ks[src*scStride:][:ng])
			}
			qkHeadsQ8IAVX(&s[8*nb*lanes], &y.qbb[0], &y.qs[0], &tk[0], &tk[0], &tks[0], d, d, ng, 1, 0, 0, 0, 0, h8, &mx[0], &scr[0])
		}
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
						dot += int32(b) * int32(int8(x[e]))
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

// The integer route's exponential: its weights are rounded to 7 bits right after it, so a
// cubic for 2^f (relative error below 7.6e-5, against a rounding step of 1/127) replaces the
// float route's quintic. p = 2^k·c(f) for t = (x-m)·log2(e), k = round-to-even(t), f = t-k,
// c(f) = ((c3·f + c2)·f + c1)·f + c0 (float32, no fused steps), and p = 0 for t < -125.
const (
	exq8Log2e = 1.442695  // float32 0x3fb8aa3b
	exq8C0    = 0.9999282 // float32 0x3f7ffb4b
	exq8C1    = 0.693261  // float32 0x3f31798e
	exq8C2    = 0.24260938
	exq8C3    = 0.05517043
	exq8Lo    = -125
)

// expHeadsQ8 is expHeads with the integer route's exponential: s[i][h] = 2^k·c(f) of
// t = (s[i][h]-m[h])·log2(e) (0 where t < -125, -Inf included) for i < n, sum[h] their sum
// over i (in order). Both routes give the same bits.
func expHeadsQ8(s []float32, n int, m, sum *[lanes]float32) {
	if n == 0 {
		*sum = [lanes]float32{}
		return
	}
	_ = s[n*lanes-1]
	if useAVX2 {
		expHeadsQ8AVX(&s[0], n, &m[0], &sum[0])
		return
	}
	var acc [lanes]float32
	for i := range n {
		row := s[i*lanes:][:lanes]
		for h, x := range row {
			e := exp2Q8(float32(float32(x-m[h]) * exq8Log2e))
			row[h] = e
			acc[h] += e
		}
	}
	*sum = acc
}

// exp2Q8 is expHeadsQ8's 2^t for t <= 0 (0 below -125).
func exp2Q8(t float32) float32 {
	if !(t >= exq8Lo) {
		return 0
	}
	k := float32(math.RoundToEven(float64(t)))
	f := float32(t - k)
	p := float32(float32(exq8C3*f) + exq8C2)
	p = float32(float32(p*f) + exq8C1)
	p = float32(float32(p*f) + exq8C0)
	return math.Float32frombits(math.Float32bits(p) + uint32(int32(k))<<23)
}
