package attention

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// The integer Q8 route rounds two things the float oracle does not: each query head to int16
// in [-32767, 32767] per group of 32 (the oracle applies the same rounding, packQueriesQ8, so scores
// agree to float rounding), and each tile's P·V weights w = p·vscale to integers in [0, 127]
// relative to the tile's largest W: a weight is off by at most W/254, so an output element is
// off by at most Σ_tiles (W/254)·Σ_i |v8_i| / Σ p (bound below, with 2% slack for the float32
// probabilities the kernels round from). The kernels' two CPU routes give identical bits.

// q8IntRoute reports whether a single query with g heads per KV head of width d over elem
// segments takes the integer Q8 route.
func q8IntRoute(elem, g, d int) bool {
	return elem == ElemQ8 && g >= 5 && g <= lanes && d%32 == 0
}

// quantizedQuery returns the query heads of q ([Heads·HeadDim]) as packQueriesQ8 rounds them,
// softmax scale included, in float64.
func quantizedQuery(q []float32, p Params) []float64 {
	H, KVH, D := p.Heads, p.KVHeads, p.HeadDim
	G, ng := H/KVH, D/32
	out := make([]float64, H*D)
	qc := make([]float32, lanes*D)
	qb := make([]int16, lanes*D)
	qs := make([]float32, ng*lanes)
	for g := range KVH {
		packQueries(qc, q[g*G*D:][:G*D], G, D, p.scale())
		packQueriesQ8(qb, qs, qc, D)
		for h := range G {
			for e := range D {
				gi := e / 32
				out[(g*G+h)*D+e] = float64(qb[(gi*lanes+h)*32+e%32]) * float64(qs[gi*lanes+h])
			}
		}
	}
	return out
}

// oracleKey names one visible key of an oracle: its segment and slot.
type oracleKey struct{ seg, slot int }

// softmaxPV turns the scores sc of keys (largest mx) into unnormalized weights in place,
// writes query head h's float64 attention output over the oracle's values to out[h*D:][:D]
// (KV head g, W values a token) and returns the weights' sum and each key's weight.
func softmaxPV(out []float32, sc []float64, mx float64, keys []oracleKey, oracle Segments, g, h, D, W int) (sum float64, pr map[oracleKey]float64) {
	pr = make(map[oracleKey]float64, len(keys))
	for i := range sc {
		sc[i] = math.Exp(sc[i] - mx)
		sum += sc[i]
		pr[keys[i]] = sc[i]
	}
	o := make([]float64, D)
	for i, kk := range keys {
		vr := oracle[kk.seg].V[kk.slot*W+g*D:][:D]
		for e := range o {
			o[e] += sc[i] / sum * float64(vr[e])
		}
	}
	for e := range o {
		out[h*D+e] = float32(o[e])
	}
	return sum, pr
}

// naiveDecodeQ8 is the oracle of one query at qpos taking the integer Q8 route: naiveAttend's
// float64 softmax, Q8 segments scored with quantizedQuery (others with the float query), values
// as the encodings stand for (oracle), and the P·V rounding bound of every output element.
func naiveDecodeQ8(q []float32, qpos int32, qkv qSegments, oracle Segments, m mask, p Params) (out, lse []float32, bound []float64) {
	H, KVH, D := p.Heads, p.KVHeads, p.HeadDim
	G, ng, W := H/KVH, D/32, KVH*D
	scale := float64(p.scale())
	qq := quantizedQuery(q, p)
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
				kr := s.K[j*W+g*D:][:D]
				if qkv[si].elem == ElemQ8 {
					for e, x := range kr {
						d += qq[h*D+e] * float64(x)
					}
				} else {
					for e, x := range kr {
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
		// The route's exponential is off by a relative expQ8Tol at most, in the weights and
		// in their sum alike: an output element by at most 2·expQ8Tol·Σ p|v| / Σ p.
		for i, kk := range keys {
			vr := oracle[kk.seg].V[kk.slot*W+g*D:][:D]
			for e := range D {
				bound[h*D+e] += 2 * expQ8Tol * sc[i] * math.Abs(float64(vr[e])) / sum
			}
		}
		for si, s := range qkv {
			if s.elem != ElemQ8 {
				continue
			}
			for k0 := 0; k0 < len(s.pos); k0 += keyTile {
				k1 := min(k0+keyTile, len(s.pos))
				for gi := range ng {
					var wmax float64
					for j := k0; j < k1; j++ {
						wmax = math.Max(wmax, pr[oracleKey{si, j}]*float64(s.vs[j*KVH*ng+g*ng+gi]))
					}
					for e := gi * 32; e < gi*32+32; e++ {
						var a float64
						for j := k0; j < k1; j++ {
							if pr[oracleKey{si, j}] > 0 {
								a += math.Abs(float64(int8(s.v[j*W+g*D+e])))
							}
						}
						bound[h*D+e] += 1.02 * wmax / 254 * a / sum
					}
				}
			}
		}
	}
	return out, lse, bound
}

// expQ8Tol bounds the relative error of the integer route's exponential (expHeadsQ8's cubic,
// 7.6e-5, and float32 rounding); it is also the route's extra allowance on the log-sum-exp.
const expQ8Tol = 7.7e-5

// requireCloseBound is requireClose with an extra absolute allowance per element.
func requireCloseBound(t *testing.T, got, want []float32, tol float64, bound []float64, what string) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		g, w := float64(got[i]), float64(want[i])
		if math.IsInf(w, -1) || math.IsInf(g, -1) {
			require.Equal(t, w, g, "%s[%d]", what, i)
			continue
		}
		require.LessOrEqual(t, math.Abs(g-w), tol*math.Max(1, math.Abs(w))+bound[i], "%s[%d]: got %g want %g (bound %g)", what, i, g, w, bound[i])
	}
}

// checkQ8IKernels runs the integer Q8 kernels on both routes (identical bits required) and
// checks the portable twin against float64 sums: scores over the rounded queries to 2e-6
// relative, P·V within the weight rounding bound.
func checkQ8IKernels(t *testing.T, r *rand.Rand, g, d, stride, n int) {
	t.Helper()
	x := makeDecKernelData(r, g, d, stride, n)
	ng, gpr := d/32, stride/32
	var q q8Scratch
	q.size(1, d)
	y := q.query(0, d)
	y.pack(x.qc, d)
	o0 := randSlice(rand.New(rand.NewPCG(5, 5)), lanes*d, 1)
	run := func() (s []float32, mx [lanes]float32, o []float32) {
		y.pack(x.qc, d) // the route's own layout
		s = make([]float32, (n+7)/8*8*lanes)
		for h := range mx {
			mx[h] = -1
		}
		qkHeadsQ8I(s, y, &q, x.kb, x.vb, x.ks, d, stride, gpr, n, g, &mx, nil)
		s = s[:n*lanes]
		o = append([]float32(nil), o0...)
		pvHeadsQ8I(o, x.p, x.vb, x.vs, d, stride, gpr, n, g, &q)
		return
	}
	slowS, slowMx, slowO := run()
	if useAVX2 {
		var fastS, fastO []float32
		var fastMx [lanes]float32
		fastS, fastMx, fastO = run()
		withPortable(t, func() { slowS, slowMx, slowO = run() })
		for i := range slowS {
			if i%lanes < g {
				require.Equal(t, math.Float32bits(slowS[i]), math.Float32bits(fastS[i]), "score %d g=%d d=%d n=%d", i, g, d, n)
			}
		}
		for h := range g {
			require.Equal(t, slowMx[h], fastMx[h], "max %d", h)
			for e := range d {
				require.Equal(t, math.Float32bits(slowO[h*d+e]), math.Float32bits(fastO[h*d+e]), "pv head %d col %d g=%d d=%d n=%d", h, e, g, d, n)
			}
		}
	}
	for h := range g {
		for i := range n {
			var s float64
			for e := range d {
				gi := e / 32
				qv := float64(q.qb[(gi*lanes+h)*32+e%32]) * float64(q.qs[gi*lanes+h])
				s += qv * float64(float32(int8(x.kb[i*stride+e]))*x.ks[i*gpr+gi])
			}
			require.InDelta(t, s, float64(slowS[i*lanes+h]), 2e-6*math.Max(1, math.Abs(s)), "portable score")
		}
		for e := range d {
			gi := e / 32
			want := float64(o0[h*d+e])
			var wmax, a float64
			for i := range n {
				w := float64(x.p[i*lanes+h]) * float64(x.vs[i*gpr+gi])
				v8 := float64(int8(x.vb[i*stride+e]))
				want += w * v8
				wmax = math.Max(wmax, w)
				a += math.Abs(v8)
			}
			require.InDelta(t, want, float64(slowO[h*d+e]), 1.02*wmax/254*a+2e-6*float64(n), "portable pv head %d col %d", h, e)
		}
	}
	_ = ng
}

// TestDecodeKernelsQ8I covers head counts, widths, strides and key counts (quads and their
// remainders) of the integer Q8 kernels.
func TestDecodeKernelsQ8I(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	for g := 5; g <= lanes; g++ {
		for _, d := range []int{32, 64, 96, 128} {
			for _, n := range []int{1, 2, 3, 4, 5, 31, 64} {
				t.Run(fmt.Sprintf("g%d/d%d/n%d", g, d, n), func(t *testing.T) {
					checkQ8IKernels(t, r, g, d, d+32*(n%2), n)
				})
			}
		}
	}
}

// TestPackQueriesQ8 checks the query rounding: range, scale, zero heads.
func TestPackQueriesQ8(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	const d = 64
	q := randSlice(r, 6*d, 5)
	q[3*d+40] = 0 // an element of 0
	for e := 32; e < 64; e++ {
		q[2*d+e] = 0 // a group of zeros
	}
	qc := make([]float32, lanes*d)
	packQueries(qc, q, 6, d, 0.5)
	qb, qs := make([]int16, lanes*d), make([]float32, 2*lanes)
	packQueriesQ8(qb, qs, qc, d)
	for gi := range 2 {
		for h := range lanes {
			var amax float64
			for e := range 32 {
				v := int32(qb[(gi*lanes+h)*32+e])
				require.True(t, v >= -qLevels && v <= qLevels)
				if h < 6 {
					x := float64(0.5 * q[h*d+gi*32+e])
					amax = math.Max(amax, math.Abs(x))
					if qs[gi*lanes+h] != 0 {
						require.InDelta(t, x/float64(qs[gi*lanes+h]), float64(v), 0.5+1e-4)
					}
				}
			}
			require.InDelta(t, amax/qLevels, float64(qs[gi*lanes+h]), 1e-7)
		}
	}
	require.Zero(t, qs[1*lanes+2], "zero group")
}

// FuzzDecodeKernelsQ8I is TestDecodeKernelsQ8I on shapes and data from the fuzz input.
func FuzzDecodeKernelsQ8I(f *testing.F) {
	f.Add(uint64(1), uint8(7), uint8(2), uint8(64), uint8(0))
	f.Add(uint64(2), uint8(8), uint8(1), uint8(3), uint8(1))
	f.Add(uint64(3), uint8(5), uint8(4), uint8(1), uint8(2))
	f.Fuzz(func(t *testing.T, seed uint64, g, d32, n, pad uint8) {
		gg := 5 + int(g)%4
		d := 32 * (1 + int(d32)%4)
		nn := 1 + int(n)%keyTile
		checkQ8IKernels(t, rand.New(rand.NewPCG(seed, 1)), gg, d, d+32*(int(pad)%3), nn)
		checkExpHeadsQ8(t, rand.New(rand.NewPCG(seed, 2)), nn, float32(1+int(pad)%40))
	})
}

// checkExpHeadsQ8 runs expHeadsQ8 on n rows of scores spread over amp below the row maxima
// (some -Inf, some far below the cut) on both routes (identical bits required) and checks the
// portable route against exp in float64: relative error below 7.6e-5 (the cubic's bound) plus
// the float32 argument's rounding, exactly 0 below the cut, sums to float32 rounding.
func checkExpHeadsQ8(t *testing.T, r *rand.Rand, n int, amp float32) {
	t.Helper()
	in := make([]float32, n*lanes)
	var m [lanes]float32
	for h := range m {
		m[h] = float32(r.NormFloat64() * 10)
	}
	for i := range n {
		for h := range lanes {
			x := m[h] - amp*float32(r.Float64())
			switch r.IntN(16) {
			case 0:
				x = float32(math.Inf(-1))
			case 1:
				x = m[h] - 80 - 20*float32(r.Float64()) // around the cut (t = -125 at -86.6)
			case 2:
				x = m[h]
			}
			in[i*lanes+h] = x
		}
	}
	run := func() ([]float32, [lanes]float32) {
		s := append([]float32(nil), in...)
		var sum [lanes]float32
		expHeadsQ8(s, n, &m, &sum)
		return s, sum
	}
	slow, slowSum := run()
	if useAVX2 {
		fast, fastSum := run()
		withPortable(t, func() { slow, slowSum = run() })
		for i := range slow {
			require.Equal(t, math.Float32bits(slow[i]), math.Float32bits(fast[i]), "exp %d of %g", i, in[i])
		}
		for h := range lanes {
			require.Equal(t, math.Float32bits(slowSum[h]), math.Float32bits(fastSum[h]), "sum %d", h)
		}
	}
	var want [lanes]float64
	for i, x := range in {
		h := i % lanes
		d := float64(x) - float64(m[h])
		if float32(float32(x-m[h])*exq8Log2e) < exq8Lo {
			require.Zero(t, slow[i], "below the cut: %g", d)
			continue
		}
		e := math.Exp(d)
		want[h] += float64(slow[i])
		// The float32 argument is off by up to ~1.2e-7·|t| (two roundings), a relative 2e-7·|d|.
		require.InDelta(t, e, float64(slow[i]), (7.6e-5+1e-6+2e-7*math.Abs(d))*e, "exp(%g)", d)
	}
	for h := range lanes {
		require.InDelta(t, want[h], float64(slowSum[h]), 1e-6*float64(n)*math.Max(1, want[h]), "sum %d", h)
	}
}

// TestExpHeadsQ8 covers tile sizes and score spreads of the integer route's exponential.
func TestExpHeadsQ8(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 8))
	for _, n := range []int{1, 2, 7, 64} {
		for _, amp := range []float32{0.5, 4, 30, 200} {
			checkExpHeadsQ8(t, r, n, amp)
		}
	}
}

// BenchmarkQ8IKernels times the integer Q8 kernels on one 64-key tile of a Qwen2.5-0.5B KV
// head (7 query heads, width 64, rows of two heads); ns/key is per key of the tile.
func BenchmarkQ8IKernels(b *testing.B) {
	const g, d, stride, n = 7, 64, 128, keyTile
	x := makeDecKernelData(rand.New(rand.NewPCG(1, 2)), g, d, stride, n)
	var q q8Scratch
	q.size(1, d)
	y := q.query(0, d)
	y.pack(x.qc, d)
	s := make([]float32, n*lanes)
	o := make([]float32, lanes*d)
	var mx [lanes]float32
	b.Run("qk", func(b *testing.B) {
		for b.Loop() {
			qkHeadsQ8I(s, y, &q, x.kb, x.vb, x.ks, d, stride, 4, n, g, &mx, nil)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/key")
	})
	b.Run("pv", func(b *testing.B) {
		for b.Loop() {
			pvHeadsQ8I(o, x.p, x.vb, x.vs, d, stride, 4, n, g, &q)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/key")
	})
	b.Run("pv-float", func(b *testing.B) {
		for b.Loop() {
			pvHeadsQ8(o, x.p, x.vb, x.vs, d, 32, stride, 4, n, g)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/key")
	})
	b.Run("qk-float", func(b *testing.B) {
		for b.Loop() {
			qkHeadsQ8(s, x.qc, x.kb, x.vb, x.ks, d, 32, stride, 4, n, g, &mx)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/key")
	})
	b.Run("exp-q8", func(b *testing.B) {
		var sum [lanes]float32
		m := [lanes]float32{2, 2, 2, 2, 2, 2, 2, 2}
		for b.Loop() {
			copy(s, x.p)
			expHeadsQ8(s, n, &m, &sum)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/key")
	})
	b.Run("exp", func(b *testing.B) {
		var sum [lanes]float32
		m := [lanes]float32{2, 2, 2, 2, 2, 2, 2, 2}
		for b.Loop() {
			copy(s, x.p)
			expHeads(s, n, &m, &sum)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/key")
	})
}

// TestQ8IntRouteError measures what the integer Q8 route adds to Q8's own storage error on a
// long cache (4096 keys of the Qwen2.5-0.5B head layout in 256-token segments): the decode
// output against the float64 oracle over the same Q8 keys and values with the query unrounded,
// as an RMS relative to the output's RMS, for flat and peaked softmaxes. The storage error
// itself (Q8 against float32 keys and values) is printed beside it for scale. Seed 77, at
// amplitudes 1, 4, 16: 0.45%, 1.34%, 0.13% with int16 queries (query rounding 0.0005–0.005%,
// the rest the 7-bit weights); int8 queries gave 0.47%, 1.43%, 1.04%; storage 0.40%, 0.63%,
// 1.10%.
func TestQ8IntRouteError(t *testing.T) {
	checkIntRouteError(t, ElemQ8, 16, 77, naiveDecodeQ8, 0.02)
}

// naiveIntDecoder is the signature of naiveDecodeQ8 and naiveDecodeQ4.
type naiveIntDecoder func(q []float32, qpos int32, qkv qSegments, oracle Segments, m mask, p Params) (out, lse []float32, bound []float64)

// checkIntRouteError runs one integer route's error measurement (TestQ8IntRouteError,
// TestQ4IntRouteError): 4096 keys of the Qwen2.5-0.5B head layout in nseg segments, query
// amplitudes 1, 4 and 16, the route's RMS error relative to the output's RMS against the
// float64 oracle over the same encoded keys and values (unrounded query), below limit; the
// shares of the query rounding (naive, which applies it) and the weight rounding are logged
// beside the storage error itself.
func checkIntRouteError(t *testing.T, elem, nseg int, seed uint64, naive naiveIntDecoder, limit float64) {
	rel := func(a, b []float32) float64 {
		var e, n float64
		for i := range a {
			e += (float64(a[i]) - float64(b[i])) * (float64(a[i]) - float64(b[i]))
			n += float64(b[i]) * float64(b[i])
		}
		return math.Sqrt(e / n)
	}
	for _, amp := range []float32{1, 4, 16} {
		c := attCase{kvh: 2, ratio: 7, d: 64, cache: 4096, n: 1, nseg: nseg, qamp: amp}
		dt := makeData(c, seed)
		qkv, oracle := quantize(dt.kv, elem, c.d)
		float, _ := naiveAttend(dt.q, dt.qpos, oracle, c.mask, dt.p)
		exact, _ := naiveAttend(dt.q, dt.qpos, dt.kv, c.mask, dt.p)
		out := make([]float32, len(dt.q))
		Decode(out, dt.q, dt.qpos[0], qkv, 0, 0, dt.p)
		qround, _, _ := naive(dt.q, dt.qpos[0], qkv, oracle, c.mask, dt.p)
		route, storage := rel(out, float), rel(float, exact)
		t.Logf("query amplitude %g: integer route %.4f%% (query rounding %.4f%%, weight rounding %.4f%%), storage %.4f%% (RMS relative)",
			amp, 100*route, 100*rel(qround, float), 100*rel(out, qround), 100*storage)
		require.Less(t, route, limit, "amplitude %g", amp)
	}
}
