package kernels

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/lighttransfer/lighttransfer-go/internal/f16"
)

// quantized returns w quantized to bits (4-bit with scheme) and its dequantized values.
func quantized(w []float32, rows, cols, bits int, scheme Q4Scheme) (Quant, []float32) {
	q := NewQuant(bits, rows, cols)
	for r := 0; r < rows; r++ {
		q.QuantizeRow(r, w[r*cols:(r+1)*cols], scheme)
	}
	deq := make([]float32, rows*cols)
	for r := 0; r < rows; r++ {
		q.DequantizeRow(deq[r*cols:(r+1)*cols], r)
	}
	return q, deq
}

// naiveMatVecQ is the oracle of MatVecQ: the dequantized weights times the dequantized
// int8 activations, summed in float64. mag bounds the terms (for 4-bit weights both the
// scale and the offset part of each weight), the scale of the kernels' rounding error.
func naiveMatVecQ(w *Quant, x []float32) (out, mag []float64) {
	var qx QX
	quantizeX(&qx, x, w.Cols)
	nb := w.Blocks()
	out, mag = make([]float64, w.Rows), make([]float64, w.Rows)
	for r := 0; r < w.Rows; r++ {
		for c := 0; c < nb*QBlock; c++ {
			b, j := c/QBlock, c%QBlock
			xd := float64(qx.Q[c]) * float64(qx.D[b])
			d := float64(f16.ToFloat32(w.D[w.dAt(r, b)]))
			var wd, wm float64
			if w.Bits == 8 {
				wd = d * float64(int8(w.Q[(r*nb+b)*QBlock+j]))
				wm = math.Abs(wd)
			} else {
				v := float64(w.level(r, b, j))
				m := float64(f16.ToFloat32(w.M[w.mAt(r, b)]))
				wd = d*v + m
				wm = math.Abs(d*v) + math.Abs(m)
			}
			out[r] += wd * xd
			mag[r] += wm * math.Abs(xd)
		}
	}
	return out, mag
}

func TestF16(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		if h&0x7c00 == 0x7c00 && h&0x3ff != 0 {
			continue // NaN
		}
		if got := f16.FromFloat32(f16.ToFloat32(uint16(h))); got != uint16(h) {
			t.Fatalf("round trip of %#04x gives %#04x (%v)", h, got, f16.ToFloat32(uint16(h)))
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 100000; i++ {
		x := float32(rng.NormFloat64() * math.Pow(2, float64(rng.IntN(40)-28)))
		h := f16.FromFloat32(x)
		y := f16.ToFloat32(h)
		if math.IsInf(float64(y), 0) {
			continue
		}
		// No neighbour of h is closer to x.
		for _, n := range []uint16{h - 1, h + 1} {
			if z := f16.ToFloat32(n); n&0x7c00 != 0x7c00 && math.Abs(float64(z-x)) < math.Abs(float64(y-x)) {
				t.Fatalf("f16.FromFloat32(%v) = %v, but %v is closer", x, y, z)
			}
		}
	}
	if f16.ToFloat32(f16.FromFloat32(1e6)) != float32(math.Inf(1)) || f16.FromFloat32(float32(math.NaN()))&0x7c00 != 0x7c00 {
		t.Fatal("overflow or NaN not kept")
	}
}

// TestQuantizeError: each 8-bit block's squared error is at most that of llama.cpp's q8_0
// rule (scale max|x|/127 in float16, levels rounded half to even: the search starts from it),
// and no weight is off by more than 2% of its block's largest magnitude (the widest candidate
// scale clips the largest weight by 2/129 of it); the 4-bit fit's squared error is below
// nearest rounding's.
func TestQuantizeError(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, cols := range []int{1, 31, 32, 33, 100, 172} {
		rows := 9
		w := randVec(rng, rows*cols)
		_, deq := quantized(w, rows, cols, 8, Q4Nearest)
		for r := 0; r < rows; r++ {
			for c0 := 0; c0 < cols; c0 += QBlock {
				blk := w[r*cols+c0 : r*cols+min(c0+QBlock, cols)]
				var amax float64
				for _, v := range blk {
					amax = max(amax, math.Abs(float64(v)))
				}
				d := float64(f16.ToFloat32(f16.FromFloat32(float32(amax / 127))))
				var eq, e0 float64
				for j, v := range blk {
					got := float64(deq[r*cols+c0+j])
					if e := math.Abs(got - float64(v)); e > 0.02*amax {
						t.Fatalf("cols %d: q8 row %d col %d: %v → %v, error %g > 2%% of the block's max %g", cols, r, c0+j, v, got, e, amax)
					}
					eq += math.Pow(got-float64(v), 2)
					e0 += math.Pow(d*math.RoundToEven(float64(v*float32(1/d)))-float64(v), 2)
				}
				if eq > e0*(1+1e-5)+1e-12 {
					t.Fatalf("cols %d: q8 row %d block at %d: squared error %g above the q8_0 rule's %g", cols, r, c0, eq, e0)
				}
			}
		}
		_, near := quantized(w, rows, cols, 4, Q4Nearest)
		_, fit := quantized(w, rows, cols, 4, Q4MinMSE)
		var en, ef float64
		for i, v := range w {
			en += math.Pow(float64(near[i]-v), 2)
			ef += math.Pow(float64(fit[i]-v), 2)
		}
		if ef > en {
			t.Fatalf("cols %d: fitted 4-bit squared error %g above nearest rounding's %g", cols, ef, en)
		}
		if rms := math.Sqrt(ef / float64(len(w))); rms > 0.12 {
			t.Fatalf("cols %d: 4-bit rms error %g of unit Gaussian weights, want < 0.12", cols, rms)
		}
	}
	// An all-zero block quantizes exactly, and so does a constant block in 4 bits (its value
	// is the offset).
	for _, bits := range []int{8, 4} {
		for _, s := range []Q4Scheme{Q4Nearest, Q4MinMSE} {
			w := make([]float32, 64)
			for i := 32; i < 64 && bits == 4; i++ {
				w[i] = 0.25
			}
			_, deq := quantized(w, 1, 64, bits, s)
			for i := range w {
				if deq[i] != w[i] {
					t.Fatalf("bits %d scheme %d: [%d] %v → %v", bits, s, i, w[i], deq[i])
				}
			}
		}
	}
}

func TestQuantizeX(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var q QX
	for _, cols := range []int{1, 31, 33, 172, 896} {
		x := randVec(rng, cols)
		quantizeX(&q, x, cols)
		for c, v := range x {
			d := q.D[c/QBlock]
			if e := math.Abs(float64(float32(q.Q[c])*d - v)); e > 0.5*float64(d)*(1+1e-5) {
				t.Fatalf("cols %d: x[%d] %v → %v·%v", cols, c, v, q.Q[c], d)
			}
		}
		for c := cols; c < len(q.Q); c++ {
			if q.Q[c] != 0 {
				t.Fatalf("cols %d: padding [%d] = %d", cols, c, q.Q[c])
			}
		}
	}
}

func TestMatVecQ(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	forEachRoute(t, func(t *testing.T) {
		for _, threads := range []int{1, 2} {
			p := NewPool(threads)
			for _, bits := range []int{8, 4} {
				for _, rows := range testRows {
					for _, cols := range testCols {
						testMatVecQCase(t, rng, p, bits, rows, cols)
					}
				}
				testMatVecQCase(t, rng, p, bits, 1000, 896) // parallel
			}
			p.Close()
		}
	})
}

func testMatVecQCase(t *testing.T, rng *rand.Rand, p *Pool, bits, rows, cols int) {
	t.Helper()
	w, x := randVec(rng, rows*cols), randVec(rng, cols)
	q, deq := quantized(w, rows, cols, bits, Q4MinMSE)
	want, mag := naiveMatVecQ(&q, x)
	dst := make([]float32, rows)
	p.MatVecQ(dst, &q, x)
	checkClose(t, "MatVecQ", dst, want, mag)
	// Against float32 x on the dequantized weights: off by x's rounding, at most half a step
	// of each block's activation scale per weight.
	var qx QX
	quantizeX(&qx, x, cols)
	for r := 0; r < rows; r++ {
		var exact, bound float64
		for c := 0; c < cols; c++ {
			wd := float64(deq[r*cols+c])
			exact += wd * float64(x[c])
			bound += math.Abs(wd) * float64(qx.D[c/QBlock]) / 2
		}
		if e := math.Abs(float64(dst[r]) - exact); e > bound*(1+1e-3)+tolRel*mag[r]+1e-6 {
			t.Fatalf("bits %d %dx%d: row %d got %v, float product %v, bound %g", bits, rows, cols, r, dst[r], exact, bound)
		}
	}
	// The fused call computes the same numbers.
	ps := [MaxProducts]Product{{Dst: make([]float32, rows), WQ: &q, Rows: rows}}
	p.MatVecs(x, cols, ps)
	for r := range dst {
		if ps[0].Dst[r] != dst[r] {
			t.Fatalf("bits %d %dx%d: MatVecs row %d %v, MatVecQ %v", bits, rows, cols, r, ps[0].Dst[r], dst[r])
		}
	}
}

func TestMatMulQ(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	forEachRoute(t, func(t *testing.T) {
		p := NewPool(2)
		defer p.Close()
		for _, bits := range []int{8, 4} {
			for _, sz := range [][3]int{{1, 5, 33}, {3, 4, 64}, {7, 13, 172}, {13, 67, 1041}, {200, 9, 100}, {5, 0, 64}, {4, 3, 0}, {600, 40, 64}} {
				n, rows, cols := sz[0], sz[1], sz[2]
				w, x := randVec(rng, rows*cols), randVec(rng, n*cols)
				q, _ := quantized(w, rows, cols, bits, Q4MinMSE)
				dst := make([]float32, n*rows)
				p.MatMulQ(dst, x, &q, n)
				for i := 0; i < n; i++ {
					want, mag := naiveMatVecQ(&q, x[i*cols:(i+1)*cols])
					checkClose(t, "MatMulQ", dst[i*rows:(i+1)*rows], want, mag)
				}
			}
		}
	})
}

// TestQuantBatchInvariant: on every route a row's result has the same bits whether it is
// computed alone (MatVecQ, MatVecs) or at any position of any batch (MatMulQ, MatMulsQ;
// 1 and 2 threads, batches across the token blocks and tile edges, zero rows, ragged columns).
func TestQuantBatchInvariant(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	forEachRoute(t, func(t *testing.T) {
		pools := []*Pool{NewPool(1), NewPool(2)}
		defer pools[0].Close()
		defer pools[1].Close()
		for _, bits := range []int{8, 4} {
			for _, sz := range [][2]int{{13, 100}, {67, 896}, {9, 33}, {40, 4864}, {6, 31}} {
				rows, cols := sz[0], sz[1]
				w := randVec(rng, rows*cols)
				q, _ := quantized(w, rows, cols, bits, Q4MinMSE)
				const pool = 24
				xs := randVec(rng, pool*cols)
				clear(xs[3*cols : 4*cols]) // an all-zero row
				// Each row alone.
				alone := make([]float32, pool*rows)
				for i := 0; i < pool; i++ {
					p := pools[i%2]
					p.MatVecQ(alone[i*rows:(i+1)*rows], &q, xs[i*cols:(i+1)*cols])
					ps := [MaxProducts]Product{{Dst: make([]float32, rows), WQ: &q, Rows: rows}}
					p.MatVecs(xs[i*cols:(i+1)*cols], cols, ps)
					requireBits(t, "MatVecs", ps[0].Dst, alone[i*rows:(i+1)*rows])
				}
				// Random batches of the pool's rows, some repeated, any order.
				for trial := 0; trial < 12; trial++ {
					n := 1 + rng.IntN(2*pool)
					if trial == 0 {
						n = 700 // more than one token block of the 896-column case
					}
					idx := make([]int, n)
					x := make([]float32, n*cols)
					for j := range idx {
						idx[j] = rng.IntN(pool)
						copy(x[j*cols:(j+1)*cols], xs[idx[j]*cols:(idx[j]+1)*cols])
					}
					p := pools[trial%2]
					dst := make([]float32, n*rows)
					p.MatMulQ(dst, x, &q, n)
					two := [MaxProducts]Product{{Dst: make([]float32, n*rows), WQ: &q, Rows: rows}, {}, {Dst: make([]float32, n*rows), WQ: &q, Rows: rows}}
					p.MatMulsQ(x, n, cols, two)
					for j, i := range idx {
						name := fmt.Sprintf("bits %d %dx%d batch %d row %d (x %d)", bits, rows, cols, n, j, i)
						requireBits(t, name+" MatMulQ", dst[j*rows:(j+1)*rows], alone[i*rows:(i+1)*rows])
						requireBits(t, name+" MatMulsQ[0]", two[0].Dst[j*rows:(j+1)*rows], alone[i*rows:(i+1)*rows])
						requireBits(t, name+" MatMulsQ[2]", two[2].Dst[j*rows:(j+1)*rows], alone[i*rows:(i+1)*rows])
					}
				}
			}
		}
	})
}

func requireBits(t *testing.T, name string, got, want []float32) {
	t.Helper()
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s: [%d] %v (%#08x), alone %v (%#08x)", name, i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
		}
	}
}

// TestQuantizeXRoutes: the assembly quantizer gives the Go quantizer's bits (ties rounded to
// even included), so decode and prefill rows quantize alike on every route.
func TestQuantizeXRoutes(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 24))
	defer setRoute(setRoute(route{}))
	for _, cols := range []int{1, 31, 32, 33, 64, 100, 896, 4864} {
		x := randVec(rng, 3*cols)
		for i := range x {
			switch rng.IntN(8) {
			case 0:
				x[i] = float32(rng.IntN(255)-127) / 2 // ties at 127/max|x| = 1 where max|x| = 63.5
			case 1:
				x[i] = 0
			}
		}
		clear(x[cols : 2*cols])
		var want QX
		for k, r := range routes() {
			setRoute(r)
			var q QX
			q.grow(3, cols)
			quantizeXRows(&q, x, cols, 0, 3)
			if k == 0 {
				want = q
				continue
			}
			for i := range want.Q {
				if q.Q[i] != want.Q[i] {
					t.Fatalf("%s cols %d: Q[%d] %d, go %d", r.name, cols, i, q.Q[i], want.Q[i])
				}
			}
			for i := range want.D {
				if math.Float32bits(q.D[i]) != math.Float32bits(want.D[i]) || math.Float32bits(q.S[i]) != math.Float32bits(want.S[i]) {
					t.Fatalf("%s cols %d: block %d d %v s %v, go %v %v", r.name, cols, i, q.D[i], q.S[i], want.D[i], want.S[i])
				}
			}
		}
	}
}

// FuzzMatMulQ checks every route's MatMulQ against the oracle and against its own MatVecQ
// (bit for bit) on random shapes, batch sizes and both formats.
func FuzzMatMulQ(f *testing.F) {
	f.Add(uint8(5), uint16(33), uint8(3), uint64(1), false)
	f.Add(uint8(67), uint16(896), uint8(9), uint64(2), true)
	f.Add(uint8(1), uint16(1), uint8(1), uint64(3), true)
	f.Fuzz(func(t *testing.T, rows8 uint8, cols16 uint16, n8 uint8, seed uint64, four bool) {
		rows, cols, n := int(rows8%70)+1, int(cols16%1100), int(n8%40)+1
		bits := 8
		if four {
			bits = 4
		}
		rng := rand.New(rand.NewPCG(seed, 78))
		w, x := randVec(rng, rows*cols), randVec(rng, n*cols)
		for i := 0; i < len(w)/50; i++ {
			w[rng.IntN(len(w))] *= 30
		}
		q, _ := quantized(w, rows, cols, bits, Q4Scheme(seed%2))
		p := NewPool(2)
		defer p.Close()
		defer setRoute(setRoute(route{}))
		for _, r := range routes() {
			setRoute(r)
			dst := make([]float32, n*rows)
			p.MatMulQ(dst, x, &q, n)
			one := make([]float32, rows)
			for i := 0; i < n; i++ {
				want, mag := naiveMatVecQ(&q, x[i*cols:(i+1)*cols])
				checkClose(t, r.name+" MatMulQ", dst[i*rows:(i+1)*rows], want, mag)
				p.MatVecQ(one, &q, x[i*cols:(i+1)*cols])
				requireBits(t, r.name+" MatMulQ vs MatVecQ", dst[i*rows:(i+1)*rows], one)
			}
		}
	})
}

func TestQuantZeroAllocs(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	q, _ := quantized(randVec(rng, 512*896), 512, 896, 8, Q4Nearest)
	x := randVec(rng, 896)
	dst := make([]float32, 512)
	p := NewPool(2)
	defer p.Close()
	p.MatVecQ(dst, &q, x)
	if a := testing.AllocsPerRun(20, func() { p.MatVecQ(dst, &q, x) }); a != 0 {
		t.Fatalf("MatVecQ allocates %v per call", a)
	}
	xs := randVec(rng, 64*896)
	out := make([]float32, 64*512)
	p.MatMulQ(out, xs, &q, 64)
	if a := testing.AllocsPerRun(20, func() { p.MatMulQ(out, xs, &q, 64) }); a != 0 {
		t.Fatalf("MatMulQ allocates %v per call", a)
	}
}

func TestQuantPanics(t *testing.T) {
	q := NewQuant(8, 4, 40)
	p := NewPool(1)
	defer p.Close()
	mustPanic(t, "short x", func() { p.MatVecQ(make([]float32, 4), &q, make([]float32, 39)) })
	mustPanic(t, "short dst", func() { p.MatVecQ(make([]float32, 3), &q, make([]float32, 40)) })
	bad := q
	bad.Q = bad.Q[:10]
	mustPanic(t, "short Q", func() { p.MatVecQ(make([]float32, 4), &bad, make([]float32, 40)) })
	mustPanic(t, "bits", func() { NewQuant(3, 1, 1) })
}

// FuzzMatVecQ checks every route against the oracle on random shapes and both formats.
func FuzzMatVecQ(f *testing.F) {
	f.Add(uint8(5), uint16(33), uint64(1), false)
	f.Add(uint8(67), uint16(896), uint64(2), true)
	f.Add(uint8(1), uint16(1), uint64(3), true)
	f.Add(uint8(4), uint16(1041), uint64(4), false)
	f.Fuzz(func(t *testing.T, rows8 uint8, cols16 uint16, seed uint64, four bool) {
		rows, cols := int(rows8%70)+1, int(cols16%1100)
		bits := 8
		if four {
			bits = 4
		}
		rng := rand.New(rand.NewPCG(seed, 77))
		w, x := randVec(rng, rows*cols), randVec(rng, cols)
		// Outliers: a few large weights and activations.
		for i := 0; i < len(w)/50; i++ {
			w[rng.IntN(len(w))] *= 30
		}
		if cols > 0 {
			x[rng.IntN(cols)] *= 50
		}
		q, _ := quantized(w, rows, cols, bits, Q4Scheme(seed%2))
		want, mag := naiveMatVecQ(&q, x)
		p := NewPool(2)
		defer p.Close()
		defer setRoute(setRoute(route{}))
		var first []float32
		for _, r := range routes() {
			setRoute(r)
			dst := make([]float32, rows)
			p.MatVecQ(dst, &q, x)
			checkClose(t, r.name+" MatVecQ", dst, want, mag)
			if first == nil {
				first = dst
			}
		}
	})
}

// TestDequantRoutes: every route widens quantized rows to the same values (4 bits: the AVX2
// route rounds d·q+m once with an FMA, Go twice, so within one float32 rounding of |d|·15+|m|).
func TestDequantRoutes(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	defer setRoute(setRoute(route{}))
	for _, bits := range []int{8, 4} {
		for _, cols := range testCols {
			rows := 3
			q, _ := quantized(randVec(rng, rows*cols), rows, cols, bits, Q4MinMSE)
			var want []float32
			for _, r := range routes() {
				setRoute(r)
				got := make([]float32, rows*cols)
				for i := 0; i < rows; i++ {
					q.DequantizeRow(got[i*cols:(i+1)*cols], i)
				}
				if want == nil {
					want = got
					continue
				}
				for i := range got {
					row, b := i/cols, (i%cols)/QBlock
					tol := 0.0
					if bits == 4 {
						tol = 1e-7 * (15*math.Abs(float64(f16.ToFloat32(q.D[q.dAt(row, b)]))) + math.Abs(float64(f16.ToFloat32(q.M[q.mAt(row, b)]))))
					}
					if math.Abs(float64(got[i]-want[i])) > tol {
						t.Fatalf("%s bits %d cols %d: [%d] %v, go %v", r.name, bits, cols, i, got[i], want[i])
					}
				}
			}
		}
	}
}

// search8Block builds a block from a seed: Gaussian weights at a random magnitude, with some
// zeros, repeated values and values placed on rounding ties of the q8_0 scale.
func search8Block(rng *rand.Rand) *[QBlock]float32 {
	var x [QBlock]float32
	mag := float32(math.Pow(2, float64(rng.IntN(30)-20)))
	for j := range x {
		x[j] = float32(rng.NormFloat64()) * mag
	}
	switch rng.IntN(4) {
	case 1:
		for j := 0; j < QBlock; j += 3 {
			x[j] = 0
		}
	case 2:
		for j := range x {
			x[j] = float32(rng.IntN(255)-127) / 2 * mag // ties at 127/max|x| = 2/mag
		}
	case 3:
		x[rng.IntN(QBlock)] *= 8 // one outlier
	}
	return &x
}

// TestSearch8Routes: the assembly scale search gives goSearch8's bits for every candidate,
// and quantBlock8 stores the same levels and scale on every route.
func TestSearch8Routes(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 3000; i++ {
		checkSearch8(t, search8Block(rng))
	}
}

// FuzzSearch8 compares the routes of quantBlock8's scale search on fuzzed blocks.
func FuzzSearch8(f *testing.F) {
	f.Add(uint64(1), uint64(2))
	f.Fuzz(func(t *testing.T, a, b uint64) {
		checkSearch8(t, search8Block(rand.New(rand.NewPCG(a, b))))
	})
}

func checkSearch8(t *testing.T, x *[QBlock]float32) {
	t.Helper()
	var amax float32
	for _, v := range x {
		amax = max(amax, float32(math.Abs(float64(v))))
	}
	if amax == 0 {
		return
	}
	var inv, sc [q8Candidates]float32
	for c := range inv {
		inv[c] = (127 + float32(c-6)/5) / amax
		sc[c] = 1 / inv[c]
	}
	var want, got [24 * q8Candidates]float32
	goSearch8(want[:], x, inv[:], sc[:])
	var qs [][]byte
	var ds []uint16
	for _, r := range routes() {
		old := setRoute(r)
		searchLanes8(got[:], x, inv[:], sc[:])
		q := make([]byte, QBlock)
		ds = append(ds, quantBlock8(q, x))
		qs = append(qs, q)
		setRoute(old)
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%s: lane sum %d = %v, goSearch8 %v (block %v)", r.name, i, got[i], want[i], *x)
			}
		}
	}
	for i := range qs {
		if ds[i] != ds[0] || !bytes.Equal(qs[i], qs[0]) {
			t.Fatalf("route %d stores scale %#04x levels %v, route 0 %#04x %v", i, ds[i], qs[i], ds[0], qs[0])
		}
	}
}

// TestQuantBlock8Special: blocks below float16's range quantize to zeros, and blocks with
// an infinite or NaN weight or one beyond float16's range keep q8_0's rule, the same on
// every route.
func TestQuantBlock8Special(t *testing.T) {
	for name, v := range map[string]float32{"tiny": 1e-9, "huge": 1e6, "inf": float32(math.Inf(1)), "nan": float32(math.NaN())} {
		var x [QBlock]float32
		for j := range x {
			x[j] = float32(j%5-2) * 1e-9
		}
		x[7] = v
		var first []byte
		for _, r := range routes() {
			old := setRoute(r)
			q := make([]byte, QBlock)
			quantBlock8(q, &x)
			setRoute(old)
			if name == "tiny" && !bytes.Equal(q, make([]byte, QBlock)) {
				t.Fatalf("%s on %s: levels %v, want zeros", name, r.name, q)
			}
			if first == nil {
				first = q
			} else if !bytes.Equal(q, first) {
				t.Fatalf("%s: route %s stores %v, go %v", name, r.name, q, first)
			}
		}
	}
}

// TestQ4Layout pins the documented 4-bit storage: rows 0..7 interleaved (group 0's block b is
// the 128 bytes at 128b, piece k holding bytes 4k..4k+3 of each row's 16-byte block in row
// order; scales at D[8b+i], offsets at M[8·b+i]), the last 3 rows one by one.
func TestQ4Layout(t *testing.T) {
	rows, cols := 11, 64
	w := make([]float32, rows*cols)
	for r := 0; r < rows; r++ {
		for c := 0; c < cols; c++ {
			w[r*cols+c] = float32((r*7+c*3)%16) + 0.25*float32(r)
		}
	}
	q, _ := quantized(w, rows, cols, 4, Q4Nearest)
	nb, ms := q.Blocks(), q.MStride()
	for r := 0; r < rows; r++ {
		for b := 0; b < nb; b++ {
			row := NewQuant(4, 1, cols) // the row quantized alone: one-by-one layout
			row.QuantizeRow(0, w[r*cols:(r+1)*cols], Q4Nearest)
			for j := 0; j < 16; j++ {
				want := row.Q[b*16+j]
				var at, di, mi int
				if r < 8 {
					at, di, mi = 128*b+32*(j/4)+4*r+j%4, 8*b+r, 8*b+r
				} else {
					at, di, mi = (r*nb+b)*16+j, r*nb+b, r*ms+b
				}
				if q.Q[at] != want || q.D[di] != row.D[b] || q.M[mi] != row.M[b] {
					t.Fatalf("row %d block %d byte %d: Q[%d]=%#x D=%#x M=%#x, want %#x %#x %#x", r, b, j, at, q.Q[at], q.D[di], q.M[mi], want, row.D[b], row.M[b])
				}
			}
		}
	}
}
