package kernels

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
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
)

// job holds the arguments of the call in flight; workers read it after the start
// signal, so no closure or per-call allocation is needed.
type job struct {
	op            opKind
	dst, x, w     []float32
	wb            []uint16
	n, rows, cols int
	total, chunk  int // units (rows, or indices for Run) and units per chunk
	nchunks       int
	fn            func(lo, hi int)
}

// Pool is a fixed set of worker goroutines that split kernels over rows. The calling
// goroutine works too, so a Pool of n threads starts n-1 goroutines. Calls on one
// Pool are serialized (a Pool is safe for concurrent use, but concurrent calls wait
// for each other); use one Pool per concurrent forward pass. Methods panic after
// Close.
type Pool struct {
	threads int
	mu      sync.Mutex
	start   []chan struct{}
	wg      sync.WaitGroup
	next    atomic.Int64
	closed  bool
	j       job
	scratch [][]float32 // per worker: a 4-row × kc float32 tile for bf16 MatMul
}

// NewPool starts a Pool of threads workers (the caller's goroutine counts as one);
// threads <= 0 means runtime.GOMAXPROCS(0). Close it when done.
func NewPool(threads int) *Pool {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	p := &Pool{threads: threads, start: make([]chan struct{}, threads-1), scratch: make([][]float32, threads)}
	for i := range p.scratch {
		p.scratch[i] = make([]float32, 4*kc)
	}
	for i := range p.start {
		ch := make(chan struct{})
		p.start[i] = ch
		go func(id int) {
			for range ch {
				p.work(id)
				p.wg.Done()
			}
		}(i + 1)
	}
	return p
}

// Threads returns the number of workers, the caller's goroutine included.
func (p *Pool) Threads() int { return p.threads }

// Close stops the worker goroutines. It is idempotent; any other method panics after it.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	for _, ch := range p.start {
		close(ch)
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
	p.j = job{op: opRun, fn: fn}
	p.dispatch(n, (n+p.threads*4-1)/(p.threads*4), 1)
}

// dispatch splits total units into chunks of at least minChunk (rounded up to a
// multiple of align) and runs them. The caller holds p.mu and has filled p.j.
func (p *Pool) dispatch(total, minChunk, align int) {
	if p.closed {
		panic("kernels: Pool used after Close")
	}
	chunk := (total + p.threads*8 - 1) / (p.threads * 8)
	chunk = max(chunk, minChunk, 1)
	chunk = (chunk + align - 1) / align * align
	nchunks := (total + chunk - 1) / chunk
	p.j.total, p.j.chunk, p.j.nchunks = total, chunk, nchunks
	p.next.Store(0)
	helpers := min(len(p.start), nchunks-1)
	p.wg.Add(helpers)
	for i := 0; i < helpers; i++ {
		p.start[i] <- struct{}{}
	}
	p.work(0)
	p.wg.Wait()
	p.j.fn, p.j.dst, p.j.x, p.j.w, p.j.wb = nil, nil, nil, nil, nil // drop references
}

// work takes chunks until none are left.
func (p *Pool) work(id int) {
	j := &p.j
	for {
		c := int(p.next.Add(1) - 1)
		if c >= j.nchunks {
			return
		}
		lo := c * j.chunk
		hi := min(lo+j.chunk, j.total)
		switch j.op {
		case opRun:
			j.fn(lo, hi)
		case opMatVec:
			matVecRows(j.dst, j.w, j.x, lo, hi, j.cols)
		case opMatVecBF16:
			matVecBF16Rows(j.dst, j.wb, j.x, lo, hi, j.cols)
		case opMatMul:
			matMulRows(j.dst, j.x, j.w, j.n, j.rows, j.cols, lo, hi)
		case opMatMulBF16:
			matMulBF16Rows(j.dst, j.x, j.wb, j.n, j.rows, j.cols, lo, hi, p.scratch[id])
		}
	}
}
