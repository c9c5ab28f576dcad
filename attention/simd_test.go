package attention

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// withPortable runs f with the assembly kernels switched off.
func withPortable(t *testing.T, f func()) {
	t.Helper()
	saved, saved512 := useAVX2, useAVX512
	useAVX2, useAVX512 = false, false
	defer func() { useAVX2, useAVX512 = saved, saved512 }()
	f()
}

// TestPortableKernels runs table cases through the pure Go kernels (the only
// ones off amd64) against the naive twin, and checks the SIMD path agrees.
func TestPortableKernels(t *testing.T) {
	cases := []attCase{
		{kvh: 2, ratio: 7, d: 64, cache: 100, n: 32, nseg: 3, mask: mask{4, 32}},
		{kvh: 1, ratio: 2, d: 128, n: 130, nseg: 1},
		{kvh: 3, ratio: 1, d: 13, cache: 40, n: 41, nseg: 2, mask: mask{2, 6}},
		{kvh: 1, ratio: 4, d: 8, cache: 90, n: 20, nseg: 2, drop: 2, mask: mask{0, 1}},
	}
	for i, c := range cases {
		t.Run(c.String(), func(t *testing.T) {
			dt := makeData(c, uint64(2000+i))
			want, wantLse := naiveAttend(dt.q, dt.qpos, dt.kv, c.mask, dt.p)
			fast := make([]float32, len(dt.q))
			Attend(fast, dt.q, dt.qpos, dt.kv, c.mask.sink, c.mask.window, dt.p, nil)
			withPortable(t, func() {
				out := make([]float32, len(dt.q))
				lse := make([]float32, c.n*dt.p.Heads)
				Attend(out, dt.q, dt.qpos, dt.kv, c.mask.sink, c.mask.window, dt.p, lse)
				requireClose(t, out, want, outTol, "portable out")
				requireClose(t, lse, wantLse, lseTol, "portable lse")
				// The two kernels differ only by float32 rounding.
				requireClose(t, out, fast, 2*outTol, "portable vs simd")
			})
		})
	}
}

// TestSIMDKernels checks each assembly kernel against a direct computation.
func TestSIMDKernels(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2+FMA on this machine")
	}
	r := rand.New(rand.NewPCG(5, 6))
	// exp: relative error of a float32 polynomial, a few ulp (1 ulp = 1.2e-7).
	x := make([]float32, 64)
	for i := range x {
		x[i] = -90 * r.Float32()
	}
	x[0], x[1], x[2], x[3] = 0, -87.3, float32(math.Inf(-1)), -1e-8
	m := float32(0.75)
	row := make([]float32, len(x))
	for i := range x {
		row[i] = x[i] + m
	}
	row[2] = float32(math.Inf(-1))
	sum := expTileAVX(&row[0], len(row), m)
	var want float64
	for i := range x {
		e := math.Exp(float64((x[i] + m) - m))
		if i == 2 {
			e = 0
		}
		want += e
		if x[i] < -87.33 {
			require.Zero(t, row[i], "exp(%v)", x[i])
			continue
		}
		require.InEpsilon(t, math.Exp(float64((x[i]+m)-m)), float64(row[i]), 3e-7, "exp(%v)", x[i])
	}
	require.InEpsilon(t, want, float64(sum), 1e-6)

	// max, including -Inf padding.
	for n := 8; n <= 64; n += 8 {
		v := randSlice(r, n, 10)
		v[n-1] = float32(math.Inf(-1))
		mx := float32(math.Inf(-1))
		for _, e := range v {
			mx = max(mx, e)
		}
		require.Equal(t, mx, maxAVX(&v[0], n))
	}

	// dot and pv tiles against float64 sums, tolerance from float32 rounding
	// of 136-term sums of values in [-1, 1].
	for _, d := range []int{8, 16, 24, 64, 136, 192, 256} {
		stride := d + 8
		q := randSlice(r, d, 1)
		k := randSlice(r, 12*stride, 1)
		dst := make([]float32, 12)
		dotTileAVX(&dst[0], &q[0], &k[0], d, stride, 12, 0.5)
		q1 := randSlice(r, d, 1)
		dstA, dstB := make([]float32, 12), make([]float32, 12)
		dot2TileAVX(&dstA[0], &dstB[0], &q[0], &q1[0], &k[0], d, stride, 12, 0.5)
		o := randSlice(r, d, 1)
		o0 := append([]float32(nil), o...)
		p := randSlice(r, 12, 1)
		pvTileAVX(&o[0], &p[0], &k[0], d, stride, 11)
		for j := 0; j < 12; j++ {
			var s float64
			for i := 0; i < d; i++ {
				s += float64(q[i]) * float64(k[j*stride+i])
			}
			require.InDelta(t, 0.5*s, float64(dst[j]), 2e-6, "dot d=%d key %d", d, j)
			require.InDelta(t, 0.5*s, float64(dstA[j]), 2e-6, "dot2 row 0 d=%d key %d", d, j)
			var s1 float64
			for i := 0; i < d; i++ {
				s1 += float64(q1[i]) * float64(k[j*stride+i])
			}
			require.InDelta(t, 0.5*s1, float64(dstB[j]), 2e-6, "dot2 row 1 d=%d key %d", d, j)
		}
		for i := 0; i < d; i++ {
			s := float64(o0[i])
			for j := 0; j < 11; j++ { // an odd count: no key-count restriction
				s += float64(p[j]) * float64(k[j*stride+i])
			}
			require.InDelta(t, s, float64(o[i]), 2e-6, "pv d=%d i %d", d, i)
		}
	}
}
