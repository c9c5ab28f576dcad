package attention

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestDecodeSweep: a single query (the decode path: 5 to 8 query heads per KV head) over
// float32, BF16, Q8 and Q4 caches of several segments, full and streaming masks (tiles cut by
// the window included), on the SIMD and the portable route, against the naive oracle over the
// values the encoding stands for; other thread counts give the same bits.
func TestDecodeSweep(t *testing.T) {
	cases := []attCase{
		{kvh: 2, ratio: 7, d: 64, cache: 300, nseg: 3},
		{kvh: 1, ratio: 8, d: 64, cache: 200, nseg: 2, mask: mask{4, 32}},
		{kvh: 2, ratio: 5, d: 128, cache: 130, nseg: 4, qamp: 4},
		{kvh: 1, ratio: 6, d: 40, cache: 100, nseg: 2, mask: mask{2, 70}, drop: 3},
		{kvh: 3, ratio: 7, d: 8, cache: 65, nseg: 1},
		{kvh: 1, ratio: 8, d: 96, cache: 257, nseg: 3, mask: mask{0, 100}, qamp: 8},
		{kvh: 2, ratio: 7, d: 16, cache: 0, nseg: 1},
		{kvh: 1, ratio: 7, d: 32, cache: 150, nseg: 2, mask: mask{1, 1}},
	}
	for i, c := range cases {
		c.n = 1
		for _, elem := range []int{ElemF32, ElemBF16, ElemQ8, ElemQ4} {
			for _, portable := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/elem%d/portable%v", c, elem, portable), func(t *testing.T) {
					dt := makeData(c, uint64(4000+i))
					var kv KV = dt.kv
					oracle := dt.kv
					if elem != ElemF32 {
						kv, oracle = quantize(dt.kv, elem, c.d)
					}
					want, wantLse := naiveAttend(dt.q, dt.qpos, oracle, c.mask, dt.p)
					tol := outTol * max(1, float64(c.qamp))
					bound := make([]float64, len(want))
					if qkv, ok := kv.(qSegments); ok {
						if w, l, b, ok := naiveIntDecode(elem, dt.q, dt.qpos[0], qkv, oracle, c.mask, dt.p); ok {
							want, wantLse, bound = w, l, b
						}
					}
					run := func(p Params, out, lse []float32) {
						f := func() { Attend(out, dt.q, dt.qpos, kv, c.mask.sink, c.mask.window, p, lse) }
						if portable {
							withPortable(t, f)
						} else {
							f()
						}
					}
					out := make([]float32, len(dt.q))
					lse := make([]float32, dt.p.Heads)
					run(dt.p, out, lse)
					requireCloseBound(t, out, want, tol, bound, "out")
					lseTol := tol
					if q8IntRoute(elem, c.ratio, c.d) {
						lseTol += expQ8Tol
					}
					requireClose(t, lse, wantLse, lseTol, "lse")
					for _, th := range []int{2, 3} {
						p := dt.p
						p.Threads = th
						o2 := make([]float32, len(out))
						l2 := make([]float32, len(lse))
						run(p, o2, l2)
						requireBits(t, o2, out, "threads")
						requireBits(t, l2, lse, "threads lse")
					}
					outD := make([]float32, len(out))
					f := func() { Decode(outD, dt.q, dt.qpos[0], kv, c.mask.sink, c.mask.window, dt.p) }
					if portable {
						withPortable(t, f)
					} else {
						f()
					}
					requireBits(t, outD, out, "Decode vs Attend")
				})
			}
		}
	}
}

// decKernelData is random input for the decode kernels: n keys and values of stride floats
// (and their Q8 encoding, groups of 32), g heads of d packed queries, probabilities p.
type decKernelData struct {
	qc, k, v, p []float32
	kb, vb      []byte
	ks, vs      []float32
}

func makeDecKernelData(r *rand.Rand, g, d, stride, n int) decKernelData {
	var x decKernelData
	q := randSlice(r, g*d, 1)
	x.qc = make([]float32, lanes*d)
	packQueries(x.qc, q, g, d, 0.125)
	x.k = randSlice(r, n*stride, 1)
	x.v = randSlice(r, n*stride, 1)
	x.p = make([]float32, n*lanes)
	for i := range x.p {
		x.p[i] = r.Float32()
	}
	// Q8 rows of stride bytes, scales per 32 elements of the whole row.
	x.kb, x.ks, _ = naiveEncode(ElemQ8, x.k, stride)
	x.vb, x.vs, _ = naiveEncode(ElemQ8, x.v, stride)
	return x
}

// checkDecKernels runs every decode kernel on the SIMD route and its portable twin and
// compares them: scores and sums to 2e-6 relative (float32 sums of up to 128 products of
// values in [-1, 1] in different orders), P·V to 2e-6 absolute per unit of Σp.
func checkDecKernels(t *testing.T, r *rand.Rand, g, d, stride, n int) {
	t.Helper()
	x := makeDecKernelData(r, g, d, stride, n)
	const tol = 2e-6
	type result struct {
		s, sq, e  []float32
		mx, mxq   [lanes]float32
		sum       [lanes]float32
		o, oq, o2 []float32
	}
	run := func() result {
		var res result
		res.s, res.sq = make([]float32, n*lanes), make([]float32, n*lanes)
		for h := range lanes {
			res.mx[h], res.mxq[h] = -1, -1
		}
		qkHeads(res.s, x.qc, x.k, x.v, d, stride, n, g, &res.mx)
		gs, gpr := q8Groups(stride)
		if !useAVX2 || d%32 == 0 {
			qkHeadsQ8(res.sq, x.qc, x.kb, x.vb, x.ks, d, gs, stride, gpr, n, g, &res.mxq)
		}
		res.e = append([]float32(nil), res.s...)
		expHeads(res.e, n, &res.mx, &res.sum)
		res.o = randSlice(rand.New(rand.NewPCG(9, 9)), lanes*d, 1)
		res.oq = append([]float32(nil), res.o...)
		pvHeads(res.o, x.p, x.v, d, stride, n, g)
		if !useAVX2 || d%32 == 0 {
			pvHeadsQ8(res.oq, x.p, x.vb, x.vs, d, gs, stride, gpr, n, g)
		}
		return res
	}
	fast := run()
	var slow result
	withPortable(t, func() { slow = run() })
	near := func(a, b []float32, what string) {
		t.Helper()
		for i := range b {
			if i%lanes >= g && len(b) == n*lanes {
				continue // lanes past g are not used
			}
			require.InDelta(t, b[i], a[i], tol*math.Max(1, math.Abs(float64(b[i]))), "%s[%d] g=%d d=%d n=%d", what, i, g, d, n)
		}
	}
	near(fast.s, slow.s, "scores")
	near(fast.e, slow.e, "exp")
	for h := range g {
		require.InDelta(t, slow.mx[h], fast.mx[h], tol, "max %d", h)
		require.InDelta(t, slow.sum[h], fast.sum[h], tol*float64(n), "sum %d", h)
	}
	on := func(a, b []float32, what string) {
		t.Helper()
		for h := range g {
			for i := range d {
				require.InDelta(t, b[h*d+i], a[h*d+i], tol*float64(n), "%s head %d col %d g=%d d=%d n=%d", what, h, i, g, d, n)
			}
		}
	}
	on(fast.o, slow.o, "pv")
	if !useAVX2 || d%32 == 0 {
		near(fast.sq, slow.sq, "q8 scores")
		for h := range g {
			require.InDelta(t, slow.mxq[h], fast.mxq[h], tol, "q8 max %d", h)
		}
		on(fast.oq, slow.oq, "q8 pv")
	}
	// The portable twins against float64 sums.
	gs, gpr := q8Groups(stride)
	for i := range n {
		for h := range g {
			var s, sq float64
			for e := range d {
				q := float64(x.qc[(e/8*lanes+h)*8+e%8])
				s += q * float64(x.k[i*stride+e])
				sq += q * float64(float32(int8(x.kb[i*stride+e]))*x.ks[i*gpr+e/gs])
			}
			require.InDelta(t, s, float64(slow.s[i*lanes+h]), tol, "portable score")
			require.InDelta(t, sq, float64(slow.sq[i*lanes+h]), tol, "portable q8 score")
		}
	}
}

// TestDecodeKernels compares the decode kernels' SIMD and portable routes over head counts,
// head widths (including the two-column P·V pass at multiples of 16 and the Q8 kernels at
// multiples of 32) and key counts.
func TestDecodeKernels(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2+FMA on this machine")
	}
	r := rand.New(rand.NewPCG(11, 12))
	for g := 5; g <= lanes; g++ {
		for _, d := range []int{8, 16, 24, 32, 64, 96, 128} {
			for _, n := range []int{1, 3, 64} {
				checkDecKernels(t, r, g, d, d+32*(n%2), n)
			}
		}
	}
}

// FuzzDecodeKernels is TestDecodeKernels on shapes and data from the fuzz input.
func FuzzDecodeKernels(f *testing.F) {
	f.Add(uint64(1), uint8(7), uint8(8), uint8(64), uint8(0))
	f.Add(uint64(2), uint8(8), uint8(4), uint8(3), uint8(1))
	f.Add(uint64(3), uint8(5), uint8(1), uint8(1), uint8(2))
	f.Fuzz(func(t *testing.T, seed uint64, g, d8, n, pad uint8) {
		if !useAVX2 {
			t.Skip("no AVX2+FMA on this machine")
		}
		gg := 5 + int(g)%4
		d := 8 * (1 + int(d8)%16)
		nn := 1 + int(n)%keyTile
		stride := d + 32*(int(pad)%3)
		checkDecKernels(t, rand.New(rand.NewPCG(seed, 1)), gg, d, stride, nn)
	})
}
