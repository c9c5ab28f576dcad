package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// Qwen2.5-0.5B shapes: q/o_proj 896×896, gate/up 4864×896, down 896×4864 and the
// tied lm_head 151936×896. MatVec reports GB/s of weights read; MatMul (512-token
// prefill through down_proj-sized 4864×896 weights) reports GFLOP/s.
var benchShapes = [][2]int{{896, 896}, {4864, 896}, {896, 4864}, {151936, 896}}

// benchRoutes runs f on each route; MatVec has no AVX-512 variant (skip512).
func benchRoutes(b *testing.B, skip512 bool, f func(b *testing.B)) {
	defer setRoute(setRoute(route{}))
	for _, r := range routes() {
		if skip512 && r.avx512 {
			continue
		}
		setRoute(r)
		b.Run(r.name, f)
	}
}

func BenchmarkMatVec(b *testing.B) {
	for _, sz := range benchShapes {
		rows, cols := sz[0], sz[1]
		rng := rand.New(rand.NewPCG(1, 1))
		w, x := randVec(rng, rows*cols), randVec(rng, cols)
		wb, _ := toBF16(w)
		dst := make([]float32, rows)
		for _, threads := range []int{1, 2} {
			name := fmt.Sprintf("%dx%d/threads=%d", rows, cols, threads)
			b.Run("f32/"+name, func(b *testing.B) {
				benchRoutes(b, true, func(b *testing.B) {
					p := NewPool(threads)
					defer p.Close()
					b.SetBytes(int64(rows * cols * 4))
					b.ReportAllocs()
					for b.Loop() {
						p.MatVec(dst, w, x, rows, cols)
					}
				})
			})
			b.Run("bf16/"+name, func(b *testing.B) {
				benchRoutes(b, true, func(b *testing.B) {
					p := NewPool(threads)
					defer p.Close()
					b.SetBytes(int64(rows * cols * 2))
					b.ReportAllocs()
					for b.Loop() {
						p.MatVecBF16(dst, wb, x, rows, cols)
					}
				})
			})
		}
	}
}

func BenchmarkMatMul(b *testing.B) {
	n, rows, cols := 512, 896, 4864
	if testing.Short() {
		n = 64
	}
	rng := rand.New(rand.NewPCG(2, 2))
	x, w := randVec(rng, n*cols), randVec(rng, rows*cols)
	wb, _ := toBF16(w)
	dst := make([]float32, n*rows)
	flop := 2 * float64(n) * float64(rows) * float64(cols)
	for _, threads := range []int{1, 2} {
		name := fmt.Sprintf("%dx%dx%d/threads=%d", n, rows, cols, threads)
		run := func(b *testing.B, f func(p *Pool)) {
			benchRoutes(b, false, func(b *testing.B) {
				p := NewPool(threads)
				defer p.Close()
				b.ReportAllocs()
				for b.Loop() {
					f(p)
				}
				b.ReportMetric(flop*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
		b.Run("f32/"+name, func(b *testing.B) { run(b, func(p *Pool) { p.MatMul(dst, x, w, n, rows, cols) }) })
		b.Run("bf16/"+name, func(b *testing.B) { run(b, func(p *Pool) { p.MatMulBF16(dst, x, wb, n, rows, cols) }) })
		for _, bits := range []int{8, 4} {
			q, _ := quantized(w, rows, cols, bits, Q4Nearest)
			// The prefill route: int8 activations against register tiles of weight rows.
			b.Run(fmt.Sprintf("q%d/int8/%s", bits, name), func(b *testing.B) { run(b, func(p *Pool) { p.MatMulQ(dst, x, &q, n) }) })
		}
	}
}

// BenchmarkMatVecQ: the quantized decode kernels at the Qwen2.5-0.5B shapes; SetBytes is the
// weight bytes read (quants, scales and offsets), so MB/s is the weight stream's bandwidth.
func BenchmarkMatVecQ(b *testing.B) {
	for _, sz := range benchShapes[:3] {
		rows, cols := sz[0], sz[1]
		rng := rand.New(rand.NewPCG(1, 1))
		w, x := randVec(rng, rows*cols), randVec(rng, cols)
		dst := make([]float32, rows)
		for _, bits := range []int{8, 4} {
			q, _ := quantized(w, rows, cols, bits, Q4Nearest)
			for _, threads := range []int{1, 2} {
				b.Run(fmt.Sprintf("q%d/%dx%d/threads=%d", bits, rows, cols, threads), func(b *testing.B) {
					benchQRoutes(b, func(b *testing.B) {
						p := NewPool(threads)
						defer p.Close()
						b.SetBytes(q.Bytes())
						b.ReportAllocs()
						for b.Loop() {
							p.MatVecQ(dst, &q, x)
						}
					})
				})
			}
		}
	}
}

// benchQRoutes runs f on the quantized kernels' routes: Go, AVX2, and VNNI where present.
func benchQRoutes(b *testing.B, f func(b *testing.B)) {
	defer setRoute(setRoute(route{}))
	for _, r := range routes() {
		if r.avx512 && !r.vnni {
			continue
		}
		setRoute(r)
		b.Run(r.name, f)
	}
}

// BenchmarkQuantizeRow: loading cost of the formats, one 896-column row per op.
func BenchmarkQuantizeRow(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 3))
	w := randVec(rng, 896)
	for _, c := range []struct {
		name   string
		bits   int
		scheme Q4Scheme
	}{{"q8", 8, Q4Nearest}, {"q4nearest", 4, Q4Nearest}, {"q4minmse", 4, Q4MinMSE}} {
		q := NewQuant(c.bits, 1, 896)
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				q.QuantizeRow(0, w, c.scheme)
			}
		})
	}
}

// BenchmarkMatMulQSmall: quantized products of a few rows (batched decode, short prefill
// chunks), where widening the weight tiles costs as much as the multiply-adds.
func BenchmarkMatMulQSmall(b *testing.B) {
	rows, cols := 4864, 896
	rng := rand.New(rand.NewPCG(4, 4))
	w := randVec(rng, rows*cols)
	for _, n := range []int{4, 16} {
		x := randVec(rng, n*cols)
		dst := make([]float32, n*rows)
		for _, bits := range []int{8, 4} {
			q, _ := quantized(w, rows, cols, bits, Q4Nearest)
			b.Run(fmt.Sprintf("q%d/n=%d", bits, n), func(b *testing.B) {
				benchQRoutes(b, func(b *testing.B) {
					p := NewPool(1)
					defer p.Close()
					for b.Loop() {
						p.MatMulQ(dst, x, &q, n)
					}
				})
			})
		}
	}
}
