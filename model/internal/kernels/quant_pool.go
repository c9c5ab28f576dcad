package kernels

import "fmt"

// quantized returns x quantized in the pool's buffer when a product of ps has quantized
// weights, else nil. The caller holds p.mu.
func (p *Pool) quantized(ps *[MaxProducts]Product, x []float32, cols int) *QX {
	for i := range ps {
		if ps[i].Rows > 0 && ps[i].WQ != nil {
			quantizeX(&p.qx, x, cols)
			return &p.qx
		}
	}
	return nil
}

func checkQuant(name string, w *Quant, rows, cols int) {
	if w.Rows != rows || w.Cols != cols {
		panic(fmt.Sprintf("kernels: %s: quantized weights are %d×%d, want %d×%d", name, w.Rows, w.Cols, rows, cols))
	}
	nb := w.Blocks()
	want := rows * nb * QBlock
	if w.Bits == 4 {
		want /= 2
		checkLen(name, "WQ.M", len(w.M), rows*w.MStride())
	} else if w.Bits != 8 {
		panic(fmt.Sprintf("kernels: %s: quantized weights have %d bits, want 8 or 4", name, w.Bits))
	}
	checkLen(name, "WQ.Q", len(w.Q), want)
	checkLen(name, "WQ.D", len(w.D), rows*nb)
}

// MatVecQ is MatVec with quantized weights w: x (w.Cols values) is quantized to int8 per
// block of QBlock values (scale max|x|/127), each block's integer dot product with the
// weights is scaled by both block scales, and dst gets w.Rows values. The result differs
// from MatVec on the dequantized weights by x's rounding (about 0.4% of each block's
// largest |x| per value); it has the same bits as the row's MatMulQ output in any batch.
// Panics if a slice is too short.
func (p *Pool) MatVecQ(dst []float32, w *Quant, x []float32) {
	checkQuant("MatVecQ", w, w.Rows, w.Cols)
	checkLen("MatVecQ", "dst", len(dst), w.Rows)
	checkLen("MatVecQ", "x", len(x), w.Cols)
	if w.Rows == 0 {
		return
	}
	if w.Rows*w.Cols < minParallelMatVec || p.threads == 1 {
		p.lockOpen()
		quantizeX(&p.qx, x, w.Cols)
		matVecQRows(dst, w, &p.qx, 0, w.Rows, p.scratch[0])
		p.mu.Unlock()
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	quantizeX(&p.qx, x, w.Cols)
	p.set(job{op: opMatVecQ, dst: dst, wq: w, qx: &p.qx, rows: w.Rows, cols: w.Cols})
	p.dispatch(w.Rows, 16, 8)
}

// MatMulQ is MatMul with quantized weights w (x [n][w.Cols], dst [n][w.Rows]): each row of
// x is quantized to int8 per block as MatVecQ does and multiplied by register tiles of
// weight rows × activation rows on integer block products. Row t of dst has the same bits
// as MatVecQ of row t of x, whatever n and t. Panics if a slice is too short.
func (p *Pool) MatMulQ(dst, x []float32, w *Quant, n int) {
	var ps [MaxProducts]Product
	ps[0] = Product{Dst: dst, WQ: w, Rows: w.Rows}
	p.matMulsQ("MatMulQ", x, n, w.Cols, &ps)
}

// MatMulsQ computes up to MaxProducts quantized products of the same x ([n][cols]) as one
// call, quantizing x once: the prefill's q/k/v and gate/up projections. Each product's Dst
// gets [n][Rows] values as MatMulQ would give; every product must have quantized weights
// (WQ) or Rows 0. Panics as MatMulQ does.
func (p *Pool) MatMulsQ(x []float32, n, cols int, ps [MaxProducts]Product) {
	p.matMulsQ("MatMulsQ", x, n, cols, &ps)
}

func (p *Pool) matMulsQ(name string, x []float32, n, cols int, ps *[MaxProducts]Product) {
	total := 0
	for i := range ps {
		pr := &ps[i]
		if pr.Rows == 0 {
			continue
		}
		if pr.WQ == nil {
			panic(fmt.Sprintf("kernels: %s: product %d has no quantized weights", name, i))
		}
		checkQuant(name, pr.WQ, pr.Rows, cols)
		checkDims(name, n, pr.Rows, cols)
		checkLen(name, "dst", len(pr.Dst), n*pr.Rows)
		total += pr.Rows
	}
	checkDims(name, n, 0, cols)
	checkLen(name, "x", len(x), n*cols)
	if n == 0 || total == 0 {
		return
	}
	work := n * total * cols
	if work < minParallelMatMul || p.threads == 1 {
		p.lockOpen()
		p.qx.grow(n, cols)
		quantizeXRows(&p.qx, x, cols, 0, n)
		matMulsQRows(ps, &p.qx, n, 0, total, p.scratch[0])
		p.mu.Unlock()
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.qx.grow(n, cols)
	p.set(job{op: opQuantX, x: x, qx: &p.qx, cols: cols})
	p.dispatch(n, 4, 1)
	p.set(job{op: opMatMulQ, qx: &p.qx, n: n, cols: cols, prods: *ps})
	p.dispatch(total, (total+p.threads*4-1)/(p.threads*4), 8)
}

// matVecQRows computes rows [r0, r1) of MatVecQ; scratch holds at least 32 values (the
// worker's tile buffer).
func matVecQRows(dst []float32, w *Quant, x *QX, r0, r1 int, scratch []float32) {
	if useAsm {
		asmMatVecQRows(dst, w, x, r0, r1, scratch)
		return
	}
	goMatVecQRows(dst, w, x, r0, r1)
}

// matMulsQRows computes rows [r0, r1) of the products ps (rows counted through the
// products in order) for the n quantized rows of x; scratch as for matVecQRows.
func matMulsQRows(ps *[MaxProducts]Product, x *QX, n, r0, r1 int, scratch []float32) {
	base := 0
	for i := range ps {
		pr := &ps[i]
		lo, hi := max(r0-base, 0), min(r1-base, pr.Rows)
		if lo < hi {
			if useAsm {
				asmMatMulQRows(pr.Dst, pr.WQ, x, n, lo, hi, scratch)
			} else {
				goMatMulQRows(pr.Dst, pr.WQ, x, n, lo, hi)
			}
		}
		base += pr.Rows
	}
}
