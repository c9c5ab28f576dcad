package kernels

import "fmt"

// Work below these sizes (weights elements for MatVec, multiply-adds for MatMul)
// runs on the caller's goroutine only: waking a worker costs more than it saves.
const (
	minParallelMatVec = 1 << 15
	minParallelMatMul = 1 << 18
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
	p.j = job{op: opMatVec, dst: dst, w: w, x: x, rows: rows, cols: cols}
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
		matVecBF16Rows(dst, w, x, 0, rows, cols)
		p.mu.Unlock()
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.j = job{op: opMatVecBF16, dst: dst, wb: w, x: x, rows: rows, cols: cols}
	p.dispatch(rows, 16, 4)
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
	p.j = job{op: opMatMul, dst: dst, x: x, w: w, n: n, rows: rows, cols: cols}
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
	p.j = job{op: opMatMulBF16, dst: dst, x: x, wb: w, n: n, rows: rows, cols: cols}
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

func matVecBF16Rows(dst []float32, w []uint16, x []float32, r0, r1, cols int) {
	if useAsm {
		asmMatVecBF16Rows(dst, w, x, r0, r1, cols)
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
