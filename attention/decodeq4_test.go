package attention

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// The integer Q4 route rounds two things the float oracle does not: per Q4 segment, each query
// head times the keys' channel steps to int8 in [-127, 127] per group of 32 (the oracle applies
// the same rounding, packQueriesQ4, so scores agree to float rounding), and each tile's P·V
// weights w = p·step to integers 0..255 against inv = min(255/W, 4096/S): a weight is off by at
// most half a step f/2 = max(W/255, S/4096)/2, so an output element is off by at most
// Σ_tiles (f/2)·Σ_i c_i / Σ p (codes c_i of the visible keys; bound below, with 2% slack for the
// float32 probabilities the kernels round from). The kernels' two CPU routes give identical bits.

// q4IntRoute reports whether a single query with g heads per KV head of width d over elem
// segments takes the integer Q4 route.
func q4IntRoute(elem, g, d int) bool {
	return elem == ElemQ4 && g >= 5 && g <= lanes && d%32 == 0
}

// naiveIntDecode returns the integer-route oracle (naiveDecodeQ8 or naiveDecodeQ4) for a single
// query over elem segments with g heads per KV head of width d, ok false when neither route
// applies.
func naiveIntDecode(elem int, q []float32, qpos int32, qkv qSegments, oracle Segments, m mask, p Params) (out, lse []float32, bound []float64, ok bool) {
	g, d := p.Heads/p.KVHeads, p.HeadDim
	switch {
	case q8IntRoute(elem, g, d):
		out, lse, bound = naiveDecodeQ8(q, qpos, qkv, oracle, m, p)
	case q4IntRoute(elem, g, d):
		out, lse, bound = naiveDecodeQ4(q, qpos, qkv, oracle, m, p)
	default:
		return nil, nil, nil, false
	}
	return out, lse, bound, true
}

// q4RoundedQuery returns, for one Q4 segment s, each query head's keys' score terms as the
// route computes them in exact arithmetic: qk[h][e] = int8 query times its group scale (the
// factor of code e) and bias[h] = Σ_e scale·q_e·lo_e, in float64.
func q4RoundedQuery(q []float32, s qSeg, p Params) (qk, bias []float64) {
	H, KVH, D := p.Heads, p.KVHeads, p.HeadDim
	G, W := H/KVH, KVH*D
	qk, bias = make([]float64, H*D), make([]float64, H)
	var sc q4Scratch
	sc.size(1, D)
	y := sc.query(0, D)
	qc := make([]float32, lanes*D)
	for g := range KVH {
		packQueries(qc, q[g*G*D:][:G*D], G, D, p.scale())
		packQueriesQ4(y, qc, s.ks[g*D:][:D], s.ks[W+g*D:][:D], D)
		for h := range G {
			for e := range D {
				gi := e / 32
				qk[(g*G+h)*D+e] = float64(int8(y.qi[q4QIndex(gi, h, e%32)])) * float64(y.qs[gi*lanes+h])
				bias[g*G+h] += float64(qc[(e/8*lanes+h)*8+e%8]) * float64(s.ks[W+g*D+e])
			}
		}
	}
	return qk, bias
}

// q4Code returns the code of element e of token t's row in b (rows of rb bytes).
func q4Code(b []byte, rb, t, e int) int { return int(b[t*rb+e/2] >> (4 * (e & 1)) & 15) }

// naiveDecodeQ4 is the oracle of one query at qpos taking the integer Q4 route: naiveAttend's
// float64 softmax, Q4 segments scored with q4RoundedQuery (others with the float query), values
// as the encodings stand for (oracle), and the P·V rounding bound of every output element.
func naiveDecodeQ4(q []float32, qpos int32, qkv qSegments, oracle Segments, m mask, p Params) (out, lse []float32, bound []float64) {
	H, KVH, D := p.Heads, p.KVHeads, p.HeadDim
	G, ng, W := H/KVH, D/32, KVH*D
	rb, ngAll := (W+1)/2, W/32
	scale := float64(p.scale())
	rounded := make([][2][]float64, len(qkv))
	for si, s := range qkv {
		if s.elem == ElemQ4 && len(s.pos) > 0 {
			qk, bias := q4RoundedQuery(q, s, p)
			rounded[si] = [2][]float64{qk, bias}
		}
	}
	out, lse = make([]float32, H*D), make([]float32, H)
	bound = make([]float64, H*D)
	for h := range H {
		g := h / G
		var keys []oracleKey
		var sc []float64
		mx := math.Inf(-1)
		for si, s := range oracle {
			for j, kp := range s.Pos {
				if !m.visible(qpos, kp) {
					continue
				}
				var d float64
				if qkv[si].elem == ElemQ4 {
					d = rounded[si][1][h]
					for e := range D {
						d += rounded[si][0][h*D+e] * float64(q4Code(qkv[si].k, rb, j, g*D+e))
					}
				} else {
					for e, x := range s.K[j*W+g*D:][:D] {
						d += float64(q[h*D+e]) * float64(x)
					}
					d *= scale
				}
				keys = append(keys, oracleKey{si, j})
				sc = append(sc, d)
				mx = math.Max(mx, d)
			}
		}
		if len(keys) == 0 {
			lse[h] = float32(math.Inf(-1))
			continue
		}
		sum, pr := softmaxPV(out, sc, mx, keys, oracle, g, h, D, W)
		lse[h] = float32(mx + math.Log(sum))
		for si, s := range qkv {
			if s.elem != ElemQ4 {
				continue
			}
			for k0 := 0; k0 < len(s.pos); k0 += keyTile {
				k1 := min(k0+keyTile, len(s.pos))
				for gi := range ng {
					var wmax, wsum float64
					for j := k0; j < k1; j++ {
						w := pr[oracleKey{si, j}] * float64(s.vs[j*2*ngAll+g*ng+gi])
						wmax, wsum = math.Max(wmax, w), wsum+w
					}
					f := math.Max(wmax/255, wsum/q4SumCap)
					for e := gi * 32; e < gi*32+32; e++ {
						var a float64
						for j := k0; j < k1; j++ {
							if pr[oracleKey{si, j}] > 0 {
								a += float64(q4Code(s.v, rb, j, g*D+e))
							}
						}
						bound[h*D+e] += 1.02 * f / 2 * a / sum
					}
				}
			}
		}
	}
	return out, lse, bound
}

// q4KernelData is one Q4 segment of n tokens with kvh heads of width d, the packed queries of
// g heads and probabilities p (some 0) for the kernels of its last KV head.
type q4KernelData struct {
	e      q4Enc
	qc, p  []float32
	kvh, d int
}

func makeQ4KernelData(r *rand.Rand, g, d, kvh, n int) q4KernelData {
	w := kvh * d
	k, v := randSlice(r, n*w, 1), randSlice(r, n*w, 1)
	for t := range n {
		k[t*w+w-1-t%d] *= 8 // outlier channels
	}
	x := q4KernelData{e: naiveEncodeQ4(k, v, n, d), kvh: kvh, d: d}
	q := randSlice(r, g*d, 1)
	x.qc = make([]float32, lanes*d)
	packQueries(x.qc, q, g, d, 0.125)
	x.p = make([]float32, n*lanes)
	for i := range x.p {
		if r.IntN(8) != 0 {
			x.p[i] = r.Float32()
		}
	}
	return x
}

// checkQ4IKernels runs the integer Q4 kernels on both routes (identical bits required) and
// checks the portable twin against float64 sums: the query rounding to half a step, scores
// over the rounded queries to 4e-6 relative to the sum of their terms' magnitudes, P·V within
// the weight rounding bound.
func checkQ4IKernels(t *testing.T, r *rand.Rand, g, d, kvh, n int) {
	t.Helper()
	x := makeQ4KernelData(r, g, d, kvh, n)
	w, ng := kvh*d, d/32
	rb, e0, ngAll := (w+1)/2, (kvh-1)*d, w/32
	ks, kl := x.e.ks[e0:e0+d], x.e.ks[w+e0:w+e0+d]
	o0 := randSlice(rand.New(rand.NewPCG(5, 5)), lanes*d, 1)
	var q q4Scratch
	q.size(1, d)
	y := q.query(0, d)
	type result struct {
		s, o     []float32
		mx       [lanes]float32
		qi       []byte
		qs, bias []float32
	}
	run := func() (res result) {
		packQueriesQ4(y, x.qc, ks, kl, d)
		res.s = make([]float32, n*lanes)
		for h := range res.mx {
			res.mx[h] = -1
		}
		qkHeadsQ4I(res.s, y, x.e.k[e0/2:], x.e.v[e0/2:], d, rb, n, g, &res.mx)
		res.o = append([]float32(nil), o0...)
		pvHeadsQ4I(res.o, x.p, x.e.v[e0/2:], x.e.vs[(kvh-1)*ng:], d, rb, 2*ngAll, ngAll, n, g, &q)
		res.qi = append([]byte(nil), y.qi...)
		res.qs, res.bias = append([]float32(nil), y.qs...), append([]float32(nil), y.bias...)
		return res
	}
	slow := run()
	if useAVX2 && d%64 == 0 {
		fast := run()
		withPortable(t, func() { slow = run() })
		require.Equal(t, slow.qi, fast.qi, "queries")
		requireBits(t, fast.qs, slow.qs, "query scales")
		requireBits(t, fast.bias, slow.bias, "bias")
		for i := range slow.s {
			if i%lanes < g {
				require.Equal(t, math.Float32bits(slow.s[i]), math.Float32bits(fast.s[i]), "score %d g=%d d=%d n=%d", i, g, d, n)
			}
		}
		for h := range g {
			require.Equal(t, slow.mx[h], fast.mx[h], "max %d", h)
			for e := range d {
				require.Equal(t, math.Float32bits(slow.o[h*d+e]), math.Float32bits(fast.o[h*d+e]), "pv head %d col %d g=%d d=%d n=%d", h, e, g, d, n)
			}
		}
	}
	for h := range g {
		qk := make([]float64, d)
		var bias float64
		for e := range d {
			gi := e / 32
			qk[e] = float64(int8(slow.qi[q4QIndex(gi, h, e%32)])) * float64(slow.qs[gi*lanes+h])
			x0 := float64(x.qc[(e/8*lanes+h)*8+e%8])
			require.InDelta(t, x0*float64(ks[e]), qk[e], float64(slow.qs[gi*lanes+h])*(0.5+1e-5), "query rounding")
			bias += x0 * float64(kl[e])
		}
		require.InDelta(t, bias, float64(slow.bias[h]), 2e-6*(1+math.Abs(bias)), "bias")
		for i := range n {
			s, mag := bias, math.Abs(bias)
			for e := range d {
				tm := qk[e] * float64(q4Code(x.e.k, rb, i, e0+e))
				s, mag = s+tm, mag+math.Abs(tm)
			}
			require.InDelta(t, s, float64(slow.s[i*lanes+h]), 4e-6*(1+mag), "portable score")
		}
		for e := range d {
			gi := e / 32
			want, mag := float64(o0[h*d+e]), math.Abs(float64(o0[h*d+e]))
			var wmax, wsum, a float64
			for i := range n {
				st, lo := float64(x.e.vs[i*2*ngAll+(kvh-1)*ng+gi]), float64(x.e.vs[i*2*ngAll+ngAll+(kvh-1)*ng+gi])
				c := float64(q4Code(x.e.v, rb, i, e0+e))
				pi := float64(x.p[i*lanes+h])
				want += pi * (c*st + lo)
				mag += pi * (c*st + math.Abs(lo))
				wmax, wsum = math.Max(wmax, pi*st), wsum+pi*st
				if pi > 0 {
					a += c
				}
			}
			f := math.Max(wmax/255, wsum/q4SumCap)
			require.InDelta(t, want, float64(slow.o[h*d+e]), 1.02*f/2*a+2e-6*(1+mag), "portable pv head %d col %d", h, e)
		}
	}
}

// TestDecodeKernelsQ4I covers head counts, widths (whole 64-column blocks for the AVX2 kernels,
// a trailing group of 32 for the portable twin alone), rows of one and two heads and key
// counts (pairs and their remainders, up to a whole tile).
func TestDecodeKernelsQ4I(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	for g := 5; g <= lanes; g++ {
		for _, d := range []int{32, 64, 96, 128} {
			for _, n := range []int{1, 2, 3, 31, 32, 64} {
				t.Run(fmt.Sprintf("g%d/d%d/n%d", g, d, n), func(t *testing.T) {
					checkQ4IKernels(t, r, g, d, 1+n%2, n)
				})
			}
		}
	}
}

// FuzzDecodeKernelsQ4I is TestDecodeKernelsQ4I on shapes and data from the fuzz input.
func FuzzDecodeKernelsQ4I(f *testing.F) {
	f.Add(uint64(1), uint8(7), uint8(1), uint8(32), uint8(1))
	f.Add(uint64(2), uint8(8), uint8(3), uint8(3), uint8(0))
	f.Add(uint64(3), uint8(5), uint8(0), uint8(1), uint8(2))
	f.Fuzz(func(t *testing.T, seed uint64, g, d32, n, kvh uint8) {
		checkQ4IKernels(t, rand.New(rand.NewPCG(seed, 1)), 5+int(g)%4, 32*(1+int(d32)%4), 1+int(kvh)%3, 1+int(n)%keyTile)
	})
}

// TestQ4IntRoute: a single query over Q4 caches cut in segments of 32 tokens (as kvcache closes
// them) and of ragged lengths, beside a float32 segment, full and streaming masks, on the SIMD
// and the portable route: the oracle with the route's rounding within its bound, identical bits
// on every thread count (the float32 segment and the softmax's exp differ between the CPU
// routes in the last bits; the Q4 kernels do not).
func TestQ4IntRoute(t *testing.T) {
	cases := []attCase{
		{kvh: 2, ratio: 7, d: 64, cache: 32 * 9, nseg: 10},
		{kvh: 2, ratio: 7, d: 64, cache: 1000, nseg: 7, mask: mask{4, 300}, qamp: 4},
		{kvh: 1, ratio: 8, d: 128, cache: 203, nseg: 4},
		{kvh: 2, ratio: 5, d: 32, cache: 77, nseg: 3},
		{kvh: 1, ratio: 6, d: 96, cache: 150, nseg: 2, mask: mask{1, 40}},
	}
	for i, c := range cases {
		c.n = 1
		t.Run(c.String(), func(t *testing.T) {
			dt := makeData(c, uint64(6000+i))
			qkv, oracle := quantize(dt.kv, ElemQ4, c.d)
			want, wantLse, bound := naiveDecodeQ4(dt.q, dt.qpos[0], qkv, oracle, c.mask, dt.p)
			tol := outTol * max(1, float64(c.qamp))
			for _, portable := range []bool{false, true} {
				var first []float32
				for _, th := range []int{1, 2, 3} {
					p := dt.p
					p.Threads = th
					out := make([]float32, len(dt.q))
					lse := make([]float32, dt.p.Heads)
					f := func() { Attend(out, dt.q, dt.qpos, qkv, c.mask.sink, c.mask.window, p, lse) }
					if portable {
						withPortable(t, f)
					} else {
						f()
					}
					requireCloseBound(t, out, want, tol, bound, "out")
					requireClose(t, lse, wantLse, tol, "lse")
					if first == nil {
						first = out
					}
					requireBits(t, out, first, fmt.Sprintf("portable %v threads %d", portable, th))
				}
			}
		})
	}
}

// TestQ4IntRouteError measures what the integer Q4 route adds to Q4's own storage error on a
// long cache (4096 keys of the Qwen2.5-0.5B head layout in 128 segments of 32 tokens on
// average, about as kvcache closes them): the decode output against the float64 oracle over the same Q4 keys and values
// with the query unrounded (what the float Q4 route computes, to float32 rounding), as an RMS
// relative to the output's RMS, for flat and peaked softmaxes. The storage error itself (Q4
// against float32 keys and values) is printed beside it for scale.
func TestQ4IntRouteError(t *testing.T) {
	checkIntRouteError(t, ElemQ4, 129, 78, naiveDecodeQ4, 0.03)
}

// BenchmarkQ4IKernels times the integer Q4 kernels on one 32-token Q4 block of a Qwen2.5-0.5B
// KV head (7 query heads, width 64, rows of two heads); ns/key is per key of the block.
func BenchmarkQ4IKernels(b *testing.B) {
	const g, d, kvh, n = 7, 64, 2, 32
	x := makeQ4KernelData(rand.New(rand.NewPCG(1, 2)), g, d, kvh, n)
	w := kvh * d
	rb := (w + 1) / 2
	var q q4Scratch
	q.size(1, d)
	y := q.query(0, d)
	s := make([]float32, n*lanes)
	o := make([]float32, lanes*d)
	var mx [lanes]float32
	b.Run("pack", func(b *testing.B) {
		for b.Loop() {
			packQueriesQ4(y, x.qc, x.e.ks[:d], x.e.ks[w:w+d], d)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/key")
	})
	b.Run("qk", func(b *testing.B) {
		for b.Loop() {
			qkHeadsQ4I(s, y, x.e.k, x.e.v, d, rb, n, g, &mx)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/key")
	})
	b.Run("pv", func(b *testing.B) {
		for b.Loop() {
			pvHeadsQ4I(o, x.p, x.e.v, x.e.vs, d, rb, 8, 4, n, g, &q)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/key")
	})
}
