package kernels

import (
	"fmt"
	"sync"

	"github.com/lighttransfer/lighttransfer-go/internal/cpu"
)

// Cache blocking of MatMul: kc columns of the weights and tb tokens at a time, so
// that a 4-row weight tile (4·kc floats, 16 KiB) stays in L1 while tb tokens
// (768 KiB) stream over it from L2. kc is a multiple of 16 and tb a multiple of 3
// and 4 (the token heights of the AVX2 and AVX-512 tiles). Tuned on a Xeon with
// AVX-512 at the 512×896×4864 shape (kc 256..1024 × tb 48..192).
const (
	kc = 1024
	tb = 192
)

type opKind uint8

const (
	opRun opKind = iota
	opMatVec
	opMatVecBF16
	opMatMul
	opMatMulBF16
	opMatVecs
	opSiLUMul
	opMatVecQ
	opMatMulQ
	opQuantX
)

// job holds the arguments of the call in flight; workers read it after the start
// signal, so no closure or per-call allocation is needed.
type job struct {
	op            opKind
	dst, x, w     []float32
	wb            []uint16
	n, rows, cols int
	fn            func(lo, hi int)
	scratch       [][]float32          // the Pool's per-worker scratch
	prods         [MaxProducts]Product // opMatVecs
	gate, up      []float32            // opSiLUMul (dst is dst)
	wq            *Quant               // opMatVecQ
	qx            *QX                  // x quantized for opMatVecQ, opMatMulQ (products in prods), opQuantX and quantized MatVecs products
}

// Pool runs the kernels on the workers of an internal/cpu Pool, splitting them over rows.
// Calls on one Pool are serialized (a Pool is safe for concurrent use, but concurrent calls
// wait for each other); use one Pool per concurrent forward pass. Methods panic after Close.
type Pool struct {
	cp      *cpu.Pool
	own     bool // cp was started by NewPool and stops with Close
	threads int
	mu      sync.Mutex
	closed  bool
	j       job
	scratch [][]float32 // per worker: a 4-row × kc float32 tile for the bf16 products
	qx      QX          // x quantized for the quantized products (grown on demand)
}

// NewPool starts a Pool of threads workers (the caller's goroutine counts as one) on a
// worker pool of its own; threads <= 0 means runtime.GOMAXPROCS(0). Close it when done.
func NewPool(threads int) *Pool {
	p := On(cpu.NewPool(threads))
	p.own = true
	return p
}

// On returns a Pool that runs on cp's workers, shared with whoever else uses cp (the
// attention kernels, in package model). Close does not stop cp.
func On(cp *cpu.Pool) *Pool {
	p := &Pool{cp: cp, threads: cp.Threads(), scratch: make([][]float32, cp.Threads())}
	for i := range p.scratch {
		p.scratch[i] = make([]float32, 4*kc)
	}
	p.j.scratch = p.scratch
	return p
}

// Threads returns the number of workers, the caller's goroutine included.
func (p *Pool) Threads() int { return p.threads }

// Close makes later calls panic and, for a Pool from NewPool, stops its workers. It is
// idempotent.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	if p.own {
		p.cp.Close()
	}
}

// Run calls fn(lo, hi) over chunks that together cover [0, n) exactly once, on the
// pool's workers, and returns when all are done. Chunks may run concurrently, so fn
// must be safe for that. Run itself allocates nothing (fn may, if it is a closure
// that captures variables freshly each call).
func (p *Pool) Run(n int, fn func(lo, hi int)) {
	if n < 0 {
		panic(fmt.Sprintf("kernels: Run: n=%d < 0", n))
	}
	if n == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.set(job{op: opRun, fn: fn})
	p.dispatch(n, (n+p.threads*4-1)/(p.threads*4), 1)
}

// set installs the call's arguments, keeping the per-worker scratch.
func (p *Pool) set(j job) {
	j.scratch = p.scratch
	p.j = j
}

// dispatch splits total units into chunks of at least minChunk (rounded up to a
// multiple of align) and runs them. The caller holds p.mu and has filled p.j.
func (p *Pool) dispatch(total, minChunk, align int) {
	if p.closed {
		panic("kernels: Pool used after Close")
	}
	p.cp.Run(&p.j, total, p.cp.ChunkSize(total, minChunk, align), 0)
	p.set(job{}) // drop references
}

// Chunk computes units [lo, hi) of the call in flight on worker id (cpu.Task).
func (j *job) Chunk(id, lo, hi int) {
	switch j.op {
	case opRun:
		j.fn(lo, hi)
	case opMatVec:
		matVecRows(j.dst, j.w, j.x, lo, hi, j.cols)
	case opMatVecBF16:
		matVecBF16Rows(j.dst, j.wb, j.x, lo, hi, j.cols, j.scratch[id])
	case opMatMul:
		matMulRows(j.dst, j.x, j.w, j.n, j.rows, j.cols, lo, hi)
	case opMatMulBF16:
		matMulBF16Rows(j.dst, j.x, j.wb, j.n, j.rows, j.cols, lo, hi, j.scratch[id])
	case opMatVecs:
		matVecsRows(&j.prods, j.x, j.qx, j.cols, lo, hi, j.scratch[id])
	case opMatVecQ:
		matVecQRows(j.dst, j.wq, j.qx, lo, hi, j.scratch[id])
	case opMatMulQ:
		matMulsQRows(&j.prods, j.qx, j.n, lo, hi, j.scratch[id])
	case opQuantX:
		quantizeXRows(j.qx, j.x, j.cols, lo, hi)
	case opSiLUMul:
		SiLUMul(j.dst[lo:hi], j.gate[lo:hi], j.up[lo:hi])
	}
}
