package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
)

// Naive twins: plain loops accumulating in float64, the oracles for every kernel.

func naiveMatMul(x, w []float32, n, rows, cols int) (out, mag []float64) {
	out = make([]float64, n*rows)
	mag = make([]float64, n*rows) // Σ|x·w|, the scale of the rounding error
	for t := 0; t < n; t++ {
		for r := 0; r < rows; r++ {
			var s, m float64
			for c := 0; c < cols; c++ {
				p := float64(x[t*cols+c]) * float64(w[r*cols+c])
				s += p
				m += math.Abs(p)
			}
			out[t*rows+r], mag[t*rows+r] = s, m
		}
	}
	return out, mag
}

func naiveRMSNorm(x, w []float32, eps float32) []float64 {
	var ss float64
	for _, v := range x {
		ss += float64(v) * float64(v)
	}
	r := 1 / math.Sqrt(ss/float64(len(x))+float64(eps))
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v) * r * float64(w[i])
	}
	return out
}

func naiveSiLUMul(gate, up []float32) []float64 {
	out := make([]float64, len(gate))
	for i, g := range gate {
		out[i] = float64(g) / (1 + math.Exp(-float64(g))) * float64(up[i])
	}
	return out
}

// tolRel bounds the error of a float32 dot product relative to Σ|terms|. Both
// routes sum in float32 with several partial sums in blocks; the worst-case bound
// is about cols·2⁻²⁴ (6e-5 at cols 1030), the typical error about √cols·2⁻²⁴
// (2e-6). 2e-5 sits between, well inside the 1e-5-relative logit tolerance the
// model is held to once errors average out over a layer.
const tolRel = 2e-5

func checkClose(t testing.TB, name string, got []float32, want, mag []float64) {
	t.Helper()
	for i := range want {
		d := math.Abs(float64(got[i]) - want[i])
		if d > tolRel*mag[i]+1e-30 || math.IsNaN(float64(got[i])) {
			t.Fatalf("%s: [%d] got %v want %v (|Σ|=%g)", name, i, got[i], want[i], mag[i])
		}
	}
}

type route struct {
	name              string
	asm, avx512, vnni bool
}

// routes lists the implementations this machine can run; forEachRoute runs f with
// each selected and restores the default.
func routes() []route {
	rs := []route{{"go", false, false, false}}
	if asmAvailable {
		rs = append(rs, route{"asm", true, false, false})
	}
	if avx512Available {
		rs = append(rs, route{"asm512", true, true, false})
	}
	if vnniAvailable {
		rs = append(rs, route{"vnni", true, true, true})
	}
	return rs
}

func forEachRoute(t *testing.T, f func(t *testing.T)) {
	defer setRoute(setRoute(route{}))
	for _, r := range routes() {
		setRoute(r)
		t.Run(r.name, f)
	}
}

// setRoute selects r and returns the route that was selected before.
func setRoute(r route) route {
	old := route{asm: useAsm, avx512: useAVX512, vnni: useVNNI}
	useAsm, useAVX512, useVNNI = r.asm, r.avx512, r.vnni
	return old
}

func randVec(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return v
}

// toBF16 rounds v to bf16 (round to nearest even) and returns the bits and the
// exact float32 values they stand for.
func toBF16(v []float32) ([]uint16, []float32) {
	b := make([]uint16, len(v))
	f := make([]float32, len(v))
	for i, x := range v {
		u := math.Float32bits(x)
		u += 0x7fff + (u>>16)&1
		b[i] = uint16(u >> 16)
		f[i] = math.Float32frombits(uint32(b[i]) << 16)
	}
	return b, f
}

// Ragged sizes: columns around multiples of 8/16 and across the kc block, rows not a
// multiple of 4, token counts not a multiple of 3 and across the tb block.
var (
	testCols = []int{0, 1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 100, 1024, 1025, 1041}
	testRows = []int{1, 2, 3, 4, 5, 7, 8, 13, 31, 64, 67}
	testN    = []int{1, 2, 3, 4, 5, 7, 13}
)

func TestMatVec(t *testing.T) {
	forEachRoute(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(1, 2))
		for _, threads := range []int{1, 2, 3} {
			p := NewPool(threads)
			for _, rows := range testRows {
				for _, cols := range testCols {
					w, x := randVec(rng, rows*cols), randVec(rng, cols)
					want, mag := naiveMatMul(x, w, 1, rows, cols)
					dst := make([]float32, rows+1)
					dst[rows] = 42 // sentinel: only rows values are written
					p.MatVec(dst, w, x, rows, cols)
					name := fmt.Sprintf("MatVec threads=%d rows=%d cols=%d", threads, rows, cols)
					checkClose(t, name, dst, want, mag)
					if dst[rows] != 42 {
						t.Fatalf("%s: wrote past rows", name)
					}
					wb, wf := toBF16(w)
					want, mag = naiveMatMul(x, wf, 1, rows, cols)
					p.MatVecBF16(dst, wb, x, rows, cols)
					checkClose(t, "BF16 "+name, dst, want, mag)
				}
			}
			p.Close()
		}
	})
}

// TestMatVecLarge crosses the parallel threshold so several workers split the rows.
func TestMatVecLarge(t *testing.T) {
	forEachRoute(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(3, 4))
		p := NewPool(3)
		defer p.Close()
		for _, sz := range [][2]int{{1001, 96}, {257, 903}, {4099, 17}} {
			rows, cols := sz[0], sz[1]
			w, x := randVec(rng, rows*cols), randVec(rng, cols)
			want, mag := naiveMatMul(x, w, 1, rows, cols)
			dst := make([]float32, rows)
			p.MatVec(dst, w, x, rows, cols)
			checkClose(t, fmt.Sprint("MatVec ", sz), dst, want, mag)
			wb, wf := toBF16(w)
			want, mag = naiveMatMul(x, wf, 1, rows, cols)
			p.MatVecBF16(dst, wb, x, rows, cols)
			checkClose(t, fmt.Sprint("MatVecBF16 ", sz), dst, want, mag)
		}
	})
}

func TestMatMul(t *testing.T) {
	forEachRoute(t, func(t *testing.T) {
		rng := rand.New(rand.NewPCG(5, 6))
		for _, threads := range []int{1, 2} {
			p := NewPool(threads)
			for _, n := range testN {
				for _, rows := range testRows {
					for _, cols := range testCols {
						if rows > 13 && cols > 100 && n > 3 {
							continue // keep the run short; the big cases are below
						}
						testMatMulCase(t, rng, p, n, rows, cols)
					}
				}
			}
			// Across the token block (tb), the column block (kc) and the parallel threshold.
			for _, c := range [][3]int{{200, 9, 1030}, {97, 67, 2070}, {193, 130, 33}, {13, 260, 1030}} {
				testMatMulCase(t, rng, p, c[0], c[1], c[2])
			}
			p.Close()
		}
	})
}

func testMatMulCase(t *testing.T, rng *rand.Rand, p *Pool, n, rows, cols int) {
	t.Helper()
	x, w := randVec(rng, n*cols), randVec(rng, rows*cols)
	dst := make([]float32, n*rows+1)
	dst[n*rows] = 42
	for i := range dst[:n*rows] {
		dst[i] = float32(math.NaN()) // every output must be overwritten
	}
	want, mag := naiveMatMul(x, w, n, rows, cols)
	p.MatMul(dst, x, w, n, rows, cols)
	name := fmt.Sprintf("MatMul threads=%d n=%d rows=%d cols=%d", p.Threads(), n, rows, cols)
	checkClose(t, name, dst, want, mag)
	if dst[n*rows] != 42 {
		t.Fatalf("%s: wrote past n*rows", name)
	}
	wb, wf := toBF16(w)
	want, mag = naiveMatMul(x, wf, n, rows, cols)
	for i := range dst[:n*rows] {
		dst[i] = float32(math.NaN())
	}
	p.MatMulBF16(dst, x, wb, n, rows, cols)
	checkClose(t, "BF16 "+name, dst, want, mag)
}

// TestRoutesAgree checks the two routes against each other on a model-sized shape.
func TestRoutesAgree(t *testing.T) {
	if !asmAvailable {
		t.Skip("no asm route on this CPU/build")
	}
	defer setRoute(setRoute(route{}))
	rng := rand.New(rand.NewPCG(7, 8))
	n, rows, cols := 7, 96, 896
	x, w := randVec(rng, n*cols), randVec(rng, rows*cols)
	_, mag := naiveMatMul(x, w, n, rows, cols)
	p := NewPool(2)
	defer p.Close()
	a, b := make([]float32, n*rows), make([]float32, n*rows)
	setRoute(route{})
	p.MatMul(a, x, w, n, rows, cols)
	setRoute(routes()[len(routes())-1])
	p.MatMul(b, x, w, n, rows, cols)
	want := make([]float64, len(a))
	for i := range a {
		want[i] = float64(a[i])
	}
	checkClose(t, "asm vs go", b, want, mag)
}

func TestElementwise(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, n := range []int{1, 2, 7, 64, 896, 4864} {
		x, w := randVec(rng, n), randVec(rng, n)
		got := make([]float32, n)
		RMSNorm(got, x, w, 1e-6)
		want := naiveRMSNorm(x, w, 1e-6)
		for i := range want {
			// a few float32 roundings per element: 4 ulp relative.
			if math.Abs(float64(got[i])-want[i]) > 5e-7*math.Abs(want[i])+1e-30 {
				t.Fatalf("RMSNorm n=%d [%d]: got %v want %v", n, i, got[i], want[i])
			}
		}
		copy(got, x)
		RMSNorm(got, got, w, 1e-6) // in place
		for i := range want {
			if math.Abs(float64(got[i])-want[i]) > 5e-7*math.Abs(want[i])+1e-30 {
				t.Fatalf("RMSNorm in place n=%d [%d]: got %v want %v", n, i, got[i], want[i])
			}
		}
		gate := randVec(rng, n)
		for i := range gate {
			gate[i] *= 8 // reach the saturated ends of the sigmoid
		}
		SiLUMul(got, gate, x)
		want = naiveSiLUMul(gate, x)
		for i := range want {
			if math.Abs(float64(got[i])-want[i]) > 5e-7*math.Abs(want[i])+1e-37 {
				t.Fatalf("SiLUMul n=%d [%d]: gate %v up %v got %v want %v", n, i, gate[i], x[i], got[i], want[i])
			}
		}
		copy(got, x)
		Add(got, w)
		for i := range got {
			if got[i] != x[i]+w[i] {
				t.Fatalf("Add n=%d [%d]", n, i)
			}
		}
	}
	var zero []float32
	RMSNorm(zero, zero, zero, 1e-6)
	if v := func() (v []float32) { v = []float32{0, 0}; RMSNorm(v, v, []float32{1, 1}, 1e-6); return }(); v[0] != 0 || v[1] != 0 {
		t.Fatalf("RMSNorm of zeros = %v", v)
	}
}

func TestPoolRun(t *testing.T) {
	for _, threads := range []int{0, 1, 2, 5} {
		p := NewPool(threads)
		for _, n := range []int{0, 1, 2, 3, 10, 1000} {
			hits := make([]atomic.Int32, n)
			p.Run(n, func(lo, hi int) {
				for i := lo; i < hi; i++ {
					hits[i].Add(1)
				}
			})
			for i := range hits {
				if h := hits[i].Load(); h != 1 {
					t.Fatalf("threads=%d n=%d: index %d visited %d times", threads, n, i, h)
				}
			}
		}
		p.Close()
		p.Close() // idempotent
	}
}

func TestPoolConcurrentCallers(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	rows, cols := 300, 200
	w, x := randVec(rng, rows*cols), randVec(rng, cols)
	want, mag := naiveMatMul(x, w, 1, rows, cols)
	p := NewPool(2)
	defer p.Close()
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dst := make([]float32, rows)
			for i := 0; i < 20; i++ {
				p.MatVec(dst, w, x, rows, cols)
				checkClose(t, "concurrent MatVec", dst, want, mag)
			}
		}()
	}
	wg.Wait()
}

func mustPanic(t *testing.T, name string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Fatalf("%s: no panic", name)
		}
	}()
	f()
}

func TestPanics(t *testing.T) {
	p := NewPool(2)
	f := make([]float32, 10)
	u := make([]uint16, 10)
	cases := []struct {
		name string
		f    func()
	}{
		{"MatVec short w", func() { p.MatVec(f, f, f, 2, 6) }},
		{"MatVec short dst", func() { p.MatVec(f[:1], f, f, 2, 2) }},
		{"MatVec short x", func() { p.MatVec(f, f, f[:1], 2, 2) }},
		{"MatVec negative", func() { p.MatVec(f, f, f, -1, 2) }},
		{"MatVecBF16 short w", func() { p.MatVecBF16(f, u, f, 3, 4) }},
		{"MatMul short x", func() { p.MatMul(f, f, f, 3, 1, 4) }},
		{"MatMul short dst", func() { p.MatMul(f, f, f, 2, 6, 1) }},
		{"MatMulBF16 short w", func() { p.MatMulBF16(f, f, u, 1, 3, 4) }},
		{"Run negative", func() { p.Run(-1, func(int, int) {}) }},
		{"RMSNorm lengths", func() { RMSNorm(f, f[:3], f, 1) }},
		{"SiLUMul lengths", func() { SiLUMul(f, f, f[:3]) }},
		{"Add lengths", func() { Add(f, f[:3]) }},
	}
	for _, c := range cases {
		mustPanic(t, c.name, c.f)
	}
	p.Close()
	mustPanic(t, "MatVec after Close", func() { p.MatVec(f, f, f, 1, 1) })
	mustPanic(t, "MatMul after Close", func() { p.MatMul(f, f, f, 1, 1, 1) })
	mustPanic(t, "Run after Close", func() { p.Run(1, func(int, int) {}) })
}

// TestZeroAllocs: the pool-driven calls allocate nothing, single- and multi-threaded.
func TestZeroAllocs(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	n, rows, cols := 8, 512, 300
	x, w := randVec(rng, n*cols), randVec(rng, rows*cols)
	wb, _ := toBF16(w)
	dst := make([]float32, n*rows)
	fn := func(lo, hi int) {}
	forEachRoute(t, func(t *testing.T) {
		for _, threads := range []int{1, 2} {
			p := NewPool(threads)
			calls := map[string]func(){
				"MatVec":     func() { p.MatVec(dst, w, x, rows, cols) },
				"MatVecBF16": func() { p.MatVecBF16(dst, wb, x, rows, cols) },
				"MatMul":     func() { p.MatMul(dst, x, w, n, rows, cols) },
				"MatMulBF16": func() { p.MatMulBF16(dst, x, wb, n, rows, cols) },
				"Run":        func() { p.Run(1000, fn) },
				"MatVecs": func() {
					p.MatVecs(x[:cols], cols, [MaxProducts]Product{{Dst: dst, W: w, Rows: rows}, {Dst: dst[rows:], WB: wb, Rows: rows}})
				},
				"SiLUMul(pool)": func() { p.SiLUMul(dst, dst, dst) },
				"RMSNorm":       func() { RMSNorm(dst[:cols], x[:cols], w[:cols], 1e-6) },
				"SiLUMul":       func() { SiLUMul(dst[:cols], x[:cols], w[:cols]) },
				"Add":           func() { Add(dst[:cols], x[:cols]) },
			}
			for name, f := range calls {
				if a := testing.AllocsPerRun(20, f); a != 0 {
					t.Errorf("%s threads=%d: %v allocs per call", name, threads, a)
				}
			}
			p.Close()
		}
	})
}

// FuzzMatMul compares both routes with the naive twin on fuzzer-chosen sizes and values.
func FuzzMatMul(f *testing.F) {
	f.Add(uint8(3), uint8(5), uint16(17), uint64(1), false)
	f.Add(uint8(1), uint8(4), uint16(896), uint64(2), true)
	f.Add(uint8(13), uint8(67), uint16(9), uint64(3), false)
	f.Add(uint8(4), uint8(3), uint16(1030), uint64(4), true)
	f.Fuzz(func(t *testing.T, n8, rows8 uint8, cols16 uint16, seed uint64, bf bool) {
		n, rows, cols := int(n8%20)+1, int(rows8%70)+1, int(cols16%1100)
		rng := rand.New(rand.NewPCG(seed, 99))
		x, w := randVec(rng, n*cols), randVec(rng, rows*cols)
		wb, wf := toBF16(w)
		if bf {
			w = wf
		}
		want, mag := naiveMatMul(x, w, n, rows, cols)
		p := NewPool(2)
		defer p.Close()
		defer setRoute(setRoute(route{}))
		dst := make([]float32, n*rows)
		for _, r := range routes() {
			setRoute(r)
			if bf {
				p.MatMulBF16(dst, x, wb, n, rows, cols)
			} else {
				p.MatMul(dst, x, w, n, rows, cols)
			}
			checkClose(t, r.name+" MatMul", dst, want, mag)
			if bf {
				p.MatVecBF16(dst, wb, x, rows, cols)
			} else {
				p.MatVec(dst, w, x, rows, cols)
			}
			checkClose(t, r.name+" MatVec", dst[:rows], want[:rows], mag[:rows])
		}
	})
}
