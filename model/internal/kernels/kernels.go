package kernels

import "fmt"

// Work below these sizes (weights elements for MatVec, multiply-adds for MatMul)
// runs on the caller's goroutine only: waking a worker costs more than it saves.
const (
	minParallelMatVec = 1 << 15
	minParallelMatMul = 1 << 18
	minParallelSiLU   = 1 << 14
)

func checkDims(name string, n, rows, cols int) {
	if n < 0 || rows < 0 || cols < 0 {
		panic(fmt.Sprintf("kernels: %s: negative size n=%d rows=%d cols=%d", name, n, rows, cols))
	}
}

func checkLen(name, what string, got, want int) {
	if got < want {
		panic(fmt.Sprintf("kernels: %s: len(%s)=%d, need at least %d", name, what, got, want))
	}
}

// MatVec sets dst[r] = Σ_c w[r*cols+c]·x[c] for r < rows: w is row-major
// [rows][cols] float32 (HF [out][in]), x has cols values, dst gets rows values.
// Rows are split over the pool's workers; the weights are streamed once.
// Panics if a slice is too short or a size is negative. dst must not overlap w or x.
func (p *Pool) MatVec(dst, w, x []float32, rows, cols int) {
	checkDims("MatVec", 1, rows, cols)
	checkLen("MatVec", "dst", len(dst), rows)
	checkLen("MatVec", "w", len(w), rows*cols)
	checkLen("MatVec", "x", len(x), cols)
	if rows == 0 {
		return
	}
	if rows*cols < minParallelMatVec || p.threads == 1 {
		p.lockOpen()
		matVecRows(dst, w, x, 0, rows, cols)
		p.mu.Unlock()
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.set(job{op: opMatVec, dst: dst, w: w, x: x, rows: rows, cols: cols})
	p.dispatch(rows, 16, 4)
}

// MatVecBF16 is MatVec with bf16 weights: w holds rows*cols bf16 bit patterns
// (the high 16 bits of a float32), widened exactly to float32 on the fly.
func (p *Pool) MatVecBF16(dst []float32, w []uint16, x []float32, rows, cols int) {
	checkDims("MatVecBF16", 1, rows, cols)
	checkLen("MatVecBF16", "dst", len(dst), rows)
	checkLen("MatVecBF16", "w", len(w), rows*cols)
	checkLen("MatVecBF16", "x", len(x), cols)
	if rows == 0 {
		return
	}
	if rows*cols < minParallelMatVec || p.threads == 1 {
		p.lockOpen()
		matVecBF16Rows(dst, w, x, 0, rows, cols, p.scratch[0])
		p.mu.Unlock()
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.set(job{op: opMatVecBF16, dst: dst, wb: w, x: x, rows: rows, cols: cols})
	p.dispatch(rows, 16, 4)
}

// MaxProducts is the most products one MatVecs call computes.
const MaxProducts = 3

// Product is one matrix-vector product of a MatVecs call: Dst gets Rows values
// Dst[r] = Σ_c W[r*cols+c]·x[c], from float32 weights W or, when WB is non-nil, from
// bf16 weights WB (W is then ignored). A Product with Rows == 0 is skipped.
type Product struct {
	Dst  []float32
	W    []float32
	WB   []uint16
	WQ   *Quant // quantized weights (W and WB are then ignored); Rows must equal WQ.Rows
	Rows int
}

// MatVecs computes up to MaxProducts matrix-vector products of the same x (cols
// values) as one parallel call: the decode step's q/k/v and gate/up projections,
// which would otherwise wait for the workers once each. The weights of each product
// are streamed once, exactly as MatVec or MatVecBF16 would. Panics as those do.
func (p *Pool) MatVecs(x []float32, cols int, ps [MaxProducts]Product) {
	total := 0
	for i := range ps {
		pr := &ps[i]
		checkDims("MatVecs", 1, pr.Rows, cols)
		if pr.Rows == 0 {
			continue
		}
		checkLen("MatVecs", "Dst", len(pr.Dst), pr.Rows)
		switch {
		case pr.WQ != nil:
			checkQuant("MatVecs", pr.WQ, pr.Rows, cols)
		case pr.WB != nil:
			checkLen("MatVecs", "WB", len(pr.WB), pr.Rows*cols)
		default:
			checkLen("MatVecs", "W", len(pr.W), pr.Rows*cols)
		}
		total += pr.Rows
	}
	checkLen("MatVecs", "x", len(x), cols)
	if total == 0 {
		return
	}
	if total*cols < minParallelMatVec || p.threads == 1 {
		p.lockOpen()
		qx := p.quantized(&ps, x, cols)
		matVecsRows(&ps, x, qx, cols, 0, total, p.scratch[0])
		p.mu.Unlock()
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	qx := p.quantized(&ps, x, cols)
	p.set(job{op: opMatVecs, x: x, qx: qx, cols: cols, prods: ps})
	p.dispatch(total, 16, 8)
}

// matVecsRows computes rows [r0, r1) of the products laid end to end; scratch is the
// worker's 4·kc tile buffer.
func matVecsRows(ps *[MaxProducts]Product, x []float32, qx *QX, cols, r0, r1 int, scratch []float32) {
	base := 0
	for i := range ps {
		pr := &ps[i]
		lo, hi := max(r0-base, 0), min(r1-base, pr.Rows)
		if lo < hi {
			if pr.WQ != nil {
				matVecQRows(pr.Dst, pr.WQ, qx, lo, hi, scratch)
			} else if pr.WB != nil {
				matVecBF16Rows(pr.Dst, pr.WB, x, lo, hi, cols, scratch)
			} else {
				matVecRows(pr.Dst, pr.W, x, lo, hi, cols)
			}
		}
		base += pr.Rows
	}
}

// SiLUMul is the package-level SiLUMul (dst = silu(gate)·up) split over the pool's
// workers when the slices are long (a prefill's MLP). Panics as SiLUMul does.
func (p *Pool) SiLUMul(dst, gate, up []float32) {
	if len(gate) != len(up) || len(dst) != len(up) || len(dst) < minParallelSiLU || p.threads == 1 {
		SiLUMul(dst, gate, up)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.set(job{op: opSiLUMul, dst: dst, gate: gate, up: up})
	p.dispatch(len(dst), 1024, 16)
}

// MatMul sets dst[t*rows+r] = Σ_c x[t*cols+c]·w[r*cols+c] for n tokens: x is
// [n][cols], w row-major [rows][cols], dst [n][rows]. This is the prefill product
// X·Wᵀ; it is blocked so each weight tile is reused for many tokens from cache.
// Rows are split over the pool's workers. Panics if a slice is too short or a size
// is negative. dst must not overlap w or x.
func (p *Pool) MatMul(dst, x, w []float32, n, rows, cols int) {
	checkDims("MatMul", n, rows, cols)
	checkLen("MatMul", "dst", len(dst), n*rows)
	checkLen("MatMul", "x", len(x), n*cols)
	checkLen("MatMul", "w", len(w), rows*cols)
	if n == 0 || rows == 0 {
		return
	}
	if n*rows*cols < minParallelMatMul || p.threads == 1 {
		p.lockOpen()
		matMulRows(dst, x, w, n, rows, cols, 0, rows)
		p.mu.Unlock()
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.set(job{op: opMatMul, dst: dst, x: x, w: w, n: n, rows: rows, cols: cols})
	p.dispatch(rows, (rows+p.threads*4-1)/(p.threads*4), 4)
}

// MatMulBF16 is MatMul with bf16 weights (w holds rows*cols bf16 bit patterns).
// Weight tiles are widened to float32 once per block and reused across tokens.
func (p *Pool) MatMulBF16(dst []float32, x []float32, w []uint16, n, rows, cols int) {
	checkDims("MatMulBF16", n, rows, cols)
	checkLen("MatMulBF16", "dst", len(dst), n*rows)
	checkLen("MatMulBF16", "x", len(x), n*cols)
	checkLen("MatMulBF16", "w", len(w), rows*cols)
	if n == 0 || rows == 0 {
		return
	}
	if n*rows*cols < minParallelMatMul || p.threads == 1 {
		p.lockOpen()
		matMulBF16Rows(dst, x, w, n, rows, cols, 0, rows, p.scratch[0])
		p.mu.Unlock()
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.set(job{op: opMatMulBF16, dst: dst, x: x, wb: w, n: n, rows: rows, cols: cols})
	p.dispatch(rows, (rows+p.threads*4-1)/(p.threads*4), 4)
}

// lockOpen locks p.mu and panics (unlocked) if the pool is closed.
func (p *Pool) lockOpen() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		panic("kernels: Pool used after Close")
	}
}

// matVecRows computes rows [r0, r1) of MatVec.
func matVecRows(dst, w, x []float32, r0, r1, cols int) {
	if useAsm {
		asmMatVecRows(dst, w, x, r0, r1, cols)
		return
	}
	goMatVecRows(dst, w, x, r0, r1, cols)
}

// matVecBF16Rows computes rows [r0, r1) of MatVecBF16; scratch is the worker's 4·kc
// tile buffer.
func matVecBF16Rows(dst []float32, w []uint16, x []float32, r0, r1, cols int, scratch []float32) {
	if useAsm {
		asmMatVecBF16Rows(dst, w, x, r0, r1, cols, scratch)
		return
	}
	goMatVecBF16Rows(dst, w, x, r0, r1, cols)
}

// matMulRows computes rows [r0, r1) of MatMul for all n tokens.
func matMulRows(dst, x, w []float32, n, rows, cols, r0, r1 int) {
	if useAsm {
		asmMatMulRows(dst, x, w, n, rows, cols, r0, r1)
		return
	}
	goMatMulRows(dst, x, w, n, rows, cols, r0, r1)
}

func matMulBF16Rows(dst, x []float32, w []uint16, n, rows, cols, r0, r1 int, scratch []float32) {
	if useAsm {
		asmMatMulBF16Rows(dst, x, w, n, rows, cols, r0, r1, scratch)
		return
	}
	goMatMulBF16Rows(dst, x, w, n, rows, cols, r0, r1, scratch)
}
