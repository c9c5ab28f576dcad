package attention

import "math"

// The integer Q4 decode route (head width a multiple of 32, so value groups are 32 wide and a
// head's groups are whole), taken on every CPU route alike so that results do not depend on
// the CPU (the AVX2 kernels need a head width that is a multiple of 64; other widths run the
// pure-Go twins, which give the same bits). A Q4 segment's keys are k = c·step + lo per
// channel (one step and minimum per channel over the segment), its values v = c·step + lo
// per token and group of 32, codes c in 0..15.
//
//   - Q·K: q·k_t = Σ_e q_e·lo_e + Σ_e (q_e·step_e)·c_{t,e}. Once per segment and KV head,
//     the steps are folded into each query head (q'_e = q_e·step_e, softmax scale included)
//     and q' is rounded to int8 in [-127, 127] per group of 32 (packQueriesQ4); the bias
//     Σ_e q_e·lo_e stays in float32. Each group's dot of codes and rounded q' is exact in
//     int32 (AVX2: the unsigned codes times the signed queries by VPMADDUBSW, two pair sums
//     added in int16 before one VPMADDWD).
//   - P·V: o_e += Σ_t p_t·lo_{t,g} + Σ_t (p_t·step_{t,g})·c_{t,e}. Per key tile, head and
//     group, the weights w_t = p_t·step_{t,g} are rounded to integers 0..255 against
//     inv = min(255/W, 4096/S) (W the tile's largest weight, S their sum), so that
//     Σ_t wq_t ≤ 4096 + n/2 and every column's Σ_t wq_t·c_t stays below 2^16 (AVX2: uint16
//     sums of VPMADDUBSW pair products over the whole tile, no widening per token); the sums
//     are scaled back by f = 1/inv once per tile and the float32 bias Σ_t p_t·lo_{t,g} added.
//     A weight is off by at most f/2.

// q4SumCap is the cap on a tile's rounded weight sum (see above): 15·(4096 + keyTile/2) < 2^16.
const q4SumCap = 4096

// q4Scratch is the integer Q4 route's working memory for one work unit.
type q4Scratch struct {
	qi   []byte    // [gper][nb][lanes][64] quantized queries (q4QIndex)
	qs   []float32 // [gper][ng][lanes] their scales
	bias []float32 // [gper][lanes] Σ_e q_e·lo_e
	wq   []byte    // [nb][keyTile/2][lanes][4] rounded weights (AVX2)
	f, b []float32 // [ng][lanes] weight scales and value biases
	wf   []float32 // [2][keyTile][lanes] weights (AVX2 scratch)
	vt   []byte    // [keyTile/2][d/16][32] pair-interleaved value codes (AVX2 scratch)
	acc  []int32   // [d] integer sums (portable route)
	wqi  []int32   // [keyTile] rounded weights (portable route)
}

func (q *q4Scratch) size(gper, d int) {
	ng, nb := d/32, (d+63)/64
	if cap(q.qi) < gper*nb*lanes*64 {
		q.qi = make([]byte, gper*nb*lanes*64)
	}
	if cap(q.qs) < gper*ng*lanes {
		q.qs = make([]float32, gper*ng*lanes)
	}
	if cap(q.bias) < gper*lanes {
		q.bias = make([]float32, gper*lanes)
	}
	if cap(q.wq) < nb*keyTile/2*lanes*4 {
		q.wq = make([]byte, nb*keyTile/2*lanes*4)
		q.f = make([]float32, ng*lanes)
		q.b = make([]float32, ng*lanes)
		q.acc = make([]int32, d)
		q.vt = make([]byte, keyTile*d)
	}
	if q.wf == nil {
		q.wf = make([]float32, 2*keyTile*lanes)
		q.wqi = make([]int32, keyTile)
	}
	q.qi, q.qs, q.bias = q.qi[:gper*nb*lanes*64], q.qs[:gper*ng*lanes], q.bias[:gper*lanes]
	q.wq, q.f, q.b = q.wq[:nb*keyTile/2*lanes*4], q.f[:ng*lanes], q.b[:ng*lanes]
	q.acc, q.vt = q.acc[:d], q.vt[:keyTile*d]
}

// q4Query is one KV head's quantized queries for one Q4 segment (packQueriesQ4).
type q4Query struct {
	qi   []byte
	qs   []float32
	bias []float32
}

// query returns the quantized queries of the unit's KV head gi (head width d).
func (q *q4Scratch) query(gi, d int) q4Query {
	ng, nb := d/32, (d+63)/64
	return q4Query{qi: q.qi[gi*nb*lanes*64:][:nb*lanes*64], qs: q.qs[gi*ng*lanes:][:ng*lanes],
		bias: q.bias[gi*lanes:][:lanes]}
}

// q4QIndex is the byte of element e (< 32) of group gi of head h in q4Query.qi: per 64
// columns and head, 32 bytes of elements 0..15 of the even then the odd group, then 32 bytes
// of their elements 16..31 (the halves the AVX2 kernel's unpacked codes line up with).
func q4QIndex(gi, h, e int) int {
	return (gi/2)*lanes*64 + h*64 + (e/16)*32 + (gi%2)*16 + e%16
}

// packQueriesQ4 quantizes the packed queries qc (packQueries' layout, d a multiple of 32)
// for one Q4 segment, st and lo the head's channel steps and minima (d each): for group gi
// and head h, with x_e = float32(qc_e·st_e), qs[gi][h] = amax/127 (amax the largest |x| of
// the group) and qi[q4QIndex(gi, h, e)] = round-to-even(x·(127/amax)) (0 where amax = 0);
// bias[h] = ((a0+a1)+(a2+a3)) + ((a4+a5)+(a6+a7)) where a_i sums qc·lo over the elements
// i, 8+i, 16+i, ... in order. Both routes give the same bits.
func packQueriesQ4(y q4Query, qc, st, lo []float32, d int) {
	ng := d / 32
	_, _, _ = qc[lanes*d-1], st[d-1], lo[d-1]
	_, _, _ = y.qi[(ng+1)/2*lanes*64-1], y.qs[ng*lanes-1], y.bias[lanes-1]
	if useAVX2 && d%64 == 0 {
		packQueriesQ4AVX(&y.qi[0], &y.qs[0], &y.bias[0], &qc[0], &st[0], &lo[0], d)
		return
	}
	for h := range lanes {
		var a [8]float32
		for c := range d / 8 {
			q := qc[(c*lanes+h)*8:][:8]
			for i := range a {
				a[i] = float32(a[i] + float32(q[i]*lo[8*c+i]))
			}
		}
		y.bias[h] = float32(float32(float32(a[0]+a[1])+float32(a[2]+a[3])) + float32(float32(a[4]+a[5])+float32(a[6]+a[7])))
		var x [32]float32
		for gi := range ng {
			var amax float32
			for e := range x {
				c := gi*32 + e
				x[e] = float32(qc[(c/8*lanes+h)*8+c%8] * st[c])
				amax = max(amax, float32(math.Abs(float64(x[e]))))
			}
			if amax == 0 {
				for e := range x {
					y.qi[q4QIndex(gi, h, e)] = 0
				}
				y.qs[gi*lanes+h] = 0
				continue
			}
			inv := 127 / amax
			for e, v := range x {
				r := int32(math.RoundToEven(float64(float32(v * inv))))
				y.qi[q4QIndex(gi, h, e)] = byte(int8(min(max(r, -127), 127)))
			}
			y.qs[gi*lanes+h] = amax / 127
		}
	}
}

// qkHeadsQ4I sets s[i][h] for i < n, h < lanes to the integer-route score of query head h
// (0 for h >= g) and key i of a Q4 segment (codes two a byte, key i's row at k[i·stride:],
// the head's first code in its low nibble): bias[h] plus, group by group in order,
// float32(float32(dot)·qs[gi][h]), dot the exact sum of qi times the codes; queries y as
// packQueriesQ4 leaves them; mx[h] is raised to the largest s[i][h]. Values v (laid out as
// k) are prefetched. Both routes give the same bits.
func qkHeadsQ4I(s []float32, y q4Query, k, v []byte, d, stride, n, g int, mx *[lanes]float32) {
	if n == 0 {
		return
	}
	ng := d / 32
	_, _ = k[(n-1)*stride+d/2-1], v[(n-1)*stride+d/2-1]
	_, _, _ = s[n*lanes-1], y.qs[ng*lanes-1], y.bias[lanes-1]
	if useAVX2 && d%64 == 0 {
		qkHeadsQ4IAVX(&s[0], &y.qi[0], &y.qs[0], &y.bias[0], &k[0], &v[0], d, stride, n, b2i(g == lanes), &mx[0])
		return
	}
	for i := range n {
		row := s[i*lanes:][:lanes]
		kr := k[i*stride:][:d/2]
		clear(row)
		for gi := range ng {
			var cd [32]int32 // the group's codes
			for e, x := range kr[gi*16:][:16] {
				cd[2*e], cd[2*e+1] = int32(x&15), int32(x>>4)
			}
			for h := range g {
				lo, hi := y.qi[q4QIndex(gi, h, 0):][:16], y.qi[q4QIndex(gi, h, 16):][:16]
				var dot int32
				for e := range 16 {
					dot += cd[e]*int32(int8(lo[e])) + cd[16+e]*int32(int8(hi[e]))
				}
				if gi == 0 {
					row[h] = y.bias[h]
				}
				row[h] = float32(row[h] + float32(float32(dot)*y.qs[gi*lanes+h]))
			}
		}
		for h, x := range row {
			mx[h] = max(mx[h], x)
		}
	}
}

// pvHeadsQ4I adds the integer-route P·V of n keys (n <= keyTile) of a Q4 segment to
// o[h][:d] for h < g (rows g..lanes-1 may change too): value i's codes at v[i·stride:] as
// qkHeadsQ4I reads keys, its group gi's step at vs[i·vsStride+gi] and minimum at
// vs[i·vsStride+loOff+gi]. For each group gi and head h: w_i = float32(p[i][h]·step_i),
// W = max_i w_i, S = Σ_i w_i and B = Σ_i float32(p[i][h]·lo_i) in order from 0; where W > 0,
// inv = min(255/W, 4096/S), f = 1/inv, wq_i = round-to-even(w_i·inv) (all 0 where W = 0);
// o[h][e] += float32(float32(f·float32(Σ_i wq_i·c_{i,e})) + B). d a multiple of 32.
func pvHeadsQ4I(o, p []float32, v []byte, vs []float32, d, stride, vsStride, loOff, n, g int, q *q4Scratch) {
	if n == 0 {
		return
	}
	ng := d / 32
	_ = v[(n-1)*stride+d/2-1]
	_ = vs[(n-1)*vsStride+loOff+ng-1]
	_, _ = o[lanes*d-1], p[n*lanes-1]
	if n > keyTile {
		panic("attention: pvHeadsQ4I takes at most keyTile keys")
	}
	if useAVX2 && d%64 == 0 {
		np := (n + 1) / 2
		_, _, _ = q.wq[d/64*np*lanes*4-1], q.vt[np*d-1], q.wf[2*n*lanes-1]
		_, _ = q.f[ng*lanes-1], q.b[ng*lanes-1]
		pvWeightsQ4AVX(&q.wq[0], &q.f[0], &q.b[0], &q.wf[0], &p[0], &vs[0], ng, vsStride, loOff, n)
		pvTransposeQ4AVX(&q.vt[0], &v[0], d, stride, n)
		pvAccQ4AVX(&o[0], &q.vt[0], &q.wq[0], &q.f[0], &q.b[0], d, np, b2i(g == lanes))
		return
	}
	acc, wq := q.acc[:32], q.wqi[:n]
	for gi := range ng {
		for h := range g {
			var W, S, B float32
			for i := range n {
				w := float32(p[i*lanes+h] * vs[i*vsStride+gi])
				W = max(W, w)
				S = float32(S + w)
				B = float32(B + float32(p[i*lanes+h]*vs[i*vsStride+loOff+gi]))
			}
			var inv, f float32
			if W > 0 {
				inv = min(255/W, q4SumCap/S)
				f = 1 / inv
			}
			for i := range n {
				w := float32(p[i*lanes+h] * vs[i*vsStride+gi])
				wq[i] = int32(math.RoundToEven(float64(float32(w * inv))))
			}
			clear(acc)
			for i := range n {
				if wq[i] == 0 {
					continue
				}
				for e, x := range v[i*stride+gi*16:][:16] {
					acc[2*e] += wq[i] * int32(x&15)
					acc[2*e+1] += wq[i] * int32(x>>4)
				}
			}
			orow := o[h*d+gi*32:][:32]
			for e, x := range acc {
				orow[e] = float32(orow[e] + float32(float32(f*float32(x))+B))
			}
		}
	}
}

// packQ4 packs the queries of the unit's KV heads g0.. (sc.qc) for the Q4 segment s.
func (j *job) packQ4(sc *decScratch, s *seg, g0, d int) {
	kd := j.kvh * d
	for gi := range j.gper {
		e0 := (g0 + gi) * d
		packQueriesQ4(sc.q4.query(gi, d), sc.qc[gi*lanes*d:][:lanes*d], s.ks[e0:e0+d], s.ks[kd+e0:kd+e0+d], d)
	}
}

// pvQ4 is pvHeadsQ4I over tokens [k0, k0+kn) of KV head g of the Q4 segment s.
func (j *job) pvQ4(o, p []float32, s *seg, k0, kn, g int, q *q4Scratch) {
	D, kd := j.d, j.kvh*j.d
	rb := (kd + 1) / 2
	_, gph := q8Groups(D)
	ng := j.kvh * gph // value groups per token row
	pvHeadsQ4I(o, p, s.vb[k0*rb+g*D/2:], s.vs[k0*2*ng+g*gph:], D, rb, 2*ng, ng, kn, j.g, q)
}
