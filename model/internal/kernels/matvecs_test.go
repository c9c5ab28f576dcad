package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestMatVecs: the fused products equal the naive twin for each product, with mixed f32
// and bf16 weights, skipped (Rows 0) products, and sizes on both sides of the parallel
// threshold so that worker chunks straddle the boundaries between products.
func TestMatVecs(t *testing.T) {
	forEachRoute(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(21, 22))
		cases := []struct{ rows [MaxProducts]int }{
			{[MaxProducts]int{3, 5, 0}},
			{[MaxProducts]int{896, 128, 128}},
			{[MaxProducts]int{0, 4864, 4863}},
			{[MaxProducts]int{0, 0, 0}},
		}
		for _, threads := range []int{1, 2, 3} {
			p := NewPool(threads)
			for _, c := range cases {
				for _, cols := range []int{0, 7, 64, 130} {
					var ps [MaxProducts]Product
					var want, mag [MaxProducts][]float64
					var widened [MaxProducts][]float32 // the weights as the kernel must see them
					for i, rows := range c.rows {
						w := randVec(rng, rows*cols)
						ps[i] = Product{Dst: make([]float32, rows+1), Rows: rows}
						ps[i].Dst[rows] = 42 // sentinel: only Rows values are written
						if i == 1 {
							wb, wf := toBF16(w)
							// W must be ignored when WB is set: give it wrong values.
							ps[i].WB, ps[i].W, widened[i] = wb, randVec(rng, rows*cols), wf
						} else {
							ps[i].W, widened[i] = w, w
						}
					}
					x := randVec(rng, cols)
					for i := range ps {
						want[i], mag[i] = naiveMatMul(x, widened[i], 1, ps[i].Rows, cols)
					}
					p.MatVecs(x, cols, ps)
					for i := range ps {
						name := fmt.Sprintf("MatVecs threads=%d rows=%v cols=%d product %d", threads, c.rows, cols, i)
						checkClose(t, name, ps[i].Dst[:ps[i].Rows], want[i], mag[i])
						if ps[i].Dst[ps[i].Rows] != 42 {
							t.Fatalf("%s: wrote past Rows", name)
						}
					}
				}
			}
			p.Close()
		}
	})
}

// TestPoolSiLUMul: the pool's split SiLUMul equals the naive twin above and below the
// parallel threshold.
func TestPoolSiLUMul(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	for _, threads := range []int{1, 2} {
		p := NewPool(threads)
		for _, n := range []int{0, 5, minParallelSiLU + 13, 4 * 4864} {
			g, u := randVec(rng, n), randVec(rng, n)
			want := naiveSiLUMul(g, u)
			dst := make([]float32, n)
			p.SiLUMul(dst, g, u)
			for i := range dst {
				// float32 exp and division: a few ulps of the result.
				if d := float64(dst[i]) - want[i]; d > 1e-6*max(1, abs64(want[i])) || -d > 1e-6*max(1, abs64(want[i])) {
					t.Fatalf("threads=%d n=%d: [%d] = %v, want %v", threads, n, i, dst[i], want[i])
				}
			}
		}
		mustPanic(t, "Pool.SiLUMul lengths", func() { p.SiLUMul(make([]float32, 4), make([]float32, 4), make([]float32, 3)) })
		p.Close()
	}
}

func abs64(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// TestSiLUMulRoutes: the AVX2 route gives every element the bits of the Go twin siluMul1,
// whatever its position (so a prefill row and a decode row agree), over ordinary, saturated,
// clamped and special inputs; and the twin is within 4e-7 of the float64 formula.
func TestSiLUMulRoutes(t *testing.T) {
	rng := rand.New(rand.NewPCG(25, 26))
	n := 4099
	g, u := randVec(rng, n), randVec(rng, n)
	for i := range g {
		switch rng.IntN(10) {
		case 0:
			g[i] *= 40 // reaches the clamp at ±88
		case 1:
			g[i] = []float32{0, float32(math.Copysign(0, -1)), 88, -88, 87.9, -87.9, 1e-30, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN())}[rng.IntN(10)]
		default:
			g[i] *= 6
		}
	}
	defer setRoute(setRoute(route{}))
	for _, r := range routes() {
		setRoute(r)
		for _, off := range []int{0, 1, 5} {
			dst := make([]float32, n-off)
			SiLUMul(dst, g[off:], u[off:])
			for i, v := range dst {
				want := siluMul1(g[off+i], u[off+i])
				if math.Float32bits(v) != math.Float32bits(want) && !(v != v && want != want) {
					t.Fatalf("%s offset %d: silu(%v)·%v = %v, twin %v", r.name, off, g[off+i], u[off+i], v, want)
				}
			}
		}
	}
	for i := range g {
		x := float64(g[i])
		if math.IsNaN(x) || math.Abs(x) > 80 {
			continue
		}
		exact := x / (1 + math.Exp(-x)) * float64(u[i])
		if d := math.Abs(float64(siluMul1(g[i], u[i])) - exact); d > 4e-7*math.Abs(exact)+1e-38 {
			t.Fatalf("silu(%v)·%v = %v, float64 %v", g[i], u[i], siluMul1(g[i], u[i]), exact)
		}
	}
}
