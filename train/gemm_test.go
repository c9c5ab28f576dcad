package train

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// gemmNaive is gemm's float64 oracle: c = op(a)·op(b) + beta·c summed in float64.
func gemmNaive(ta, tb bool, m, n, k int, a, b []float32, beta float32, c []float32) {
	for i := range m {
		for j := range n {
			var s float64
			for q := range k {
				x := a[i*k+q]
				if ta {
					x = a[q*m+i]
				}
				y := b[q*n+j]
				if tb {
					y = b[j*k+q]
				}
				s += float64(x) * float64(y)
			}
			if beta != 0 {
				s += float64(beta) * float64(c[i*n+j])
			}
			c[i*n+j] = float32(s)
		}
	}
}

// gemmGonum is the product through gonum's blas32 (the route gemm replaced; benchmark baseline).
func gemmGonum(ta, tb bool, m, n, k int, a, b []float32, beta float32, c []float32) {
	A, ot := blas32.General{Rows: m, Cols: k, Stride: k, Data: a}, blas.NoTrans
	if ta {
		A, ot = blas32.General{Rows: k, Cols: m, Stride: m, Data: a}, blas.Trans
	}
	B, ob := blas32.General{Rows: k, Cols: n, Stride: n, Data: b}, blas.NoTrans
	if tb {
		B, ob = blas32.General{Rows: n, Cols: k, Stride: k, Data: b}, blas.Trans
	}
	blas32.Gemm(ot, ob, 1, A, B, beta, blas32.General{Rows: m, Cols: n, Stride: n, Data: c})
}

func randSlice(r *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}

// routes runs f with the AVX2 tile kernel (where the CPU has it) and with the Go twin.
func routes(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	saved := useAVX2
	defer func() { useAVX2 = saved }()
	for _, avx := range []bool{false, true} {
		if avx && !saved {
			continue
		}
		useAVX2 = avx
		t.Run(fmt.Sprintf("avx2=%v", avx), f)
	}
}

// checkGemm compares gemm with the float64 oracle. Each output sums k products of unit
// normals, so its float32 rounding error is at most about k·2⁻²⁴·Σ|a·b|; the tolerance is
// 1e-6·k·(Σ|a_iq·b_qj| + |beta·c|) per element.
func checkGemm(t *testing.T, r *rand.Rand, ta, tb bool, m, n, k int, beta float32, par bool) {
	t.Helper()
	a, b := randSlice(r, m*k), randSlice(r, k*n)
	c0 := randSlice(r, m*n)
	got, want := append([]float32(nil), c0...), append([]float32(nil), c0...)
	gemmRun(ta, tb, m, n, k, a, b, beta, got, par)
	gemmNaive(ta, tb, m, n, k, a, b, beta, want)
	absA, absB := make([]float32, len(a)), make([]float32, len(b))
	for i, v := range a {
		absA[i] = float32(math.Abs(float64(v)))
	}
	for i, v := range b {
		absB[i] = float32(math.Abs(float64(v)))
	}
	mag := make([]float32, m*n)
	gemmNaive(ta, tb, m, n, k, absA, absB, 0, mag)
	for i := range got {
		tol := 1e-6 * float64(k+1) * (float64(mag[i]) + math.Abs(float64(beta*c0[i])))
		if d := math.Abs(float64(got[i] - want[i])); !(d <= tol) {
			t.Fatalf("ta=%v tb=%v %dx%dx%d beta %v: c[%d] = %v, want %v (|diff| %g > %g)", ta, tb, m, n, k, beta, i, got[i], want[i], d, tol)
		}
	}
}

func TestGemmAgainstNaive(t *testing.T) {
	routes(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(7, 8))
		shapes := [][3]int{{1, 1, 1}, {4, 16, 1}, {3, 5, 7}, {4, 16, 8}, {8, 32, 64}, {13, 37, 11},
			{64, 172, 64}, {172, 64, 33}, {16, 512, 64}, {2, 17, 300}, {5, 15, 0}, {0, 3, 4}}
		for _, s := range shapes {
			for _, ta := range []bool{false, true} {
				for _, tb := range []bool{false, true} {
					for _, beta := range []float32{0, 1, 0.5} {
						checkGemm(t, r, ta, tb, s[0], s[1], s[2], beta, s[0]*s[1]*s[2] > 1000)
					}
				}
			}
		}
	})
}

// FuzzGemm checks gemm against the oracle on fuzzed shapes, transposes and routes.
func FuzzGemm(f *testing.F) {
	f.Add(uint8(5), uint8(17), uint8(9), uint8(3), uint64(1))
	f.Add(uint8(64), uint8(64), uint8(8), uint8(0), uint64(2))
	f.Fuzz(func(t *testing.T, m, n, k, flags uint8, seed uint64) {
		saved := useAVX2
		defer func() { useAVX2 = saved }()
		useAVX2 = saved && flags&8 == 0
		r := rand.New(rand.NewPCG(seed, 3))
		beta := []float32{0, 1, -0.25, 2}[flags>>4&3]
		checkGemm(t, r, flags&1 != 0, flags&2 != 0, int(m%70), int(n%70), int(k%70), beta, flags&4 != 0)
	})
}

// BenchmarkGemm compares gemm with gonum's blas32 on the training step's products (one
// thread: b.SetParallelism does not apply; run with -cpu 1 for single-thread figures).
func BenchmarkGemm(b *testing.B) {
	cases := []struct {
		name    string
		ta, tb  bool
		m, n, k int
	}{
		{"x·wT_2048x172x64", false, true, 2048, 172, 64},
		{"dy·w_2048x64x172", false, false, 2048, 64, 172},
		{"dyT·x_172x64x2048", true, false, 172, 64, 2048},
		{"head_2048x512x64", false, true, 2048, 512, 64},
	}
	for _, c := range cases {
		r := rand.New(rand.NewPCG(1, 1))
		x, y, z := randSlice(r, c.m*c.k), randSlice(r, c.k*c.n), make([]float32, c.m*c.n)
		for _, impl := range []struct {
			name string
			f    func(ta, tb bool, m, n, k int, a, b []float32, beta float32, c []float32)
		}{{"train", gemm}, {"gonum", gemmGonum}} {
			b.Run(c.name+"/"+impl.name, func(b *testing.B) {
				for range b.N {
					impl.f(c.ta, c.tb, c.m, c.n, c.k, x, y, 0, z)
				}
				b.ReportMetric(2*float64(c.m*c.n*c.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

// TestDenseAttentionMatchesLoops checks the causal dense route (triangular tile products,
// kept or recomputed probabilities) against the per-key loops on GQA shapes with ragged T,
// on both tile kernels. Both sum the same float32 terms in different orders: tolerance 2e-5
// of the largest magnitude of each output.
func TestDenseAttentionMatchesLoops(t *testing.T) {
	routes(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(11, 12))
		for _, s := range [][3]int{{32, 4, 2}, {37, 8, 4}, {64, 8, 2}, {45, 2, 2}} {
			T, H, KV := s[0], s[1], s[2]
			for _, D := range []int{4, 8, 16} {
				a := &attnShape{B: 2, T: T, H: H, KV: KV, D: D, scale: float32(1 / math.Sqrt(float64(D)))}
				nq, nk := a.B*T*H*D, a.B*T*KV*D
				q, k, v, dout := randSlice(r, nq), randSlice(r, nk), randSlice(r, nk), randSlice(r, nq)
				type res struct{ out, lse, dq, dk, dv []float32 }
				run := func(loops, keep bool) res {
					a.loops = loops
					x := res{make([]float32, nq), make([]float32, a.B*T*H), make([]float32, nq), make([]float32, nk), make([]float32, nk)}
					var kp []float32
					if keep && !loops {
						kp = make([]float32, a.B*H*T*T)
					}
					attnForward(x.out, x.lse, kp, q, k, v, a)
					attnBackward(x.dq, x.dk, x.dv, q, k, v, x.out, x.lse, kp, dout, a)
					return x
				}
				want := run(true, false)
				for _, keep := range []bool{false, true} {
					got := run(false, keep)
					for _, c := range []struct {
						name string
						g, w []float32
					}{{"out", got.out, want.out}, {"lse", got.lse, want.lse}, {"dq", got.dq, want.dq}, {"dk", got.dk, want.dk}, {"dv", got.dv, want.dv}} {
						var mx float64
						for _, x := range c.w {
							mx = math.Max(mx, math.Abs(float64(x)))
						}
						for i := range c.w {
							if d := math.Abs(float64(c.g[i] - c.w[i])); d > 2e-5*mx {
								t.Fatalf("T %d H %d KV %d D %d keep %v: %s[%d] = %v, loops %v (max %v)", T, H, KV, D, keep, c.name, i, c.g[i], c.w[i], mx)
							}
						}
					}
				}
			}
		}
	})
}

// TestExpAffine checks the vector exponential against math.Exp on both routes: relative
// error within 5e-7 (expf's polynomial, about 2 ulp after the affine step), exactly 0 below
// −87.3, clamped at e^88 above, and the returned sum within 1e-6 relative of the float64 sum
// (where it fits a float32).
func TestExpAffine(t *testing.T) {
	routes(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(5, 6))
		for _, n := range []int{0, 1, 7, 8, 9, 64, 517} {
			for _, ab := range [][2]float32{{1, 0}, {-1, 0}, {0.35, -3}, {1, -20}, {30, 0}} {
				src := make([]float32, n)
				for i := range src {
					src[i] = float32(r.NormFloat64() * 4)
				}
				dst := make([]float32, n)
				sum := expAffine(dst, src, ab[0], ab[1])
				var want float64
				for i, x := range src {
					tt := float64(ab[0]*x + ab[1])
					var w float64
					switch {
					case tt < -87.3:
						w = 0
					case tt > 88:
						w = math.Exp(88)
					default:
						w = math.Exp(tt)
					}
					want += float64(dst[i])
					if w == 0 {
						if dst[i] != 0 {
							t.Fatalf("n %d a,b %v: exp(%v) = %v, want 0", n, ab, tt, dst[i])
						}
						continue
					}
					// the affine step itself rounds t by up to |t|·2⁻²⁴ (fused or not)
					tol := 5e-7 + math.Abs(tt)*1.2e-7
					if d := math.Abs(float64(dst[i])-w) / w; d > tol {
						t.Fatalf("n %d a,b %v: exp(%v) = %v, want %v (rel %g)", n, ab, tt, dst[i], w, d)
					}
				}
				if want < math.MaxFloat32/2 && math.Abs(float64(sum)-want) > 1e-6*want { // (a sum of clamped e^88s overflows)
					t.Fatalf("n %d a,b %v: sum %v, want %v", n, ab, sum, want)
				}
			}
		}
	})
}
