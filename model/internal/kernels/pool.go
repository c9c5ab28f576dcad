package kernels

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
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
)

// job holds the arguments of the call in flight; workers read it after the start
// signal, so no closure or per-call allocation is needed.
type job struct {
	op            opKind
	dst, x, w     []float32
	xp            []float32 // x permuted for the bf16 matrix-vector tiles, or nil
	wb            []uint16
	n, rows, cols int
	total, chunk  int // units (rows, or indices for Run) and units per chunk
	nchunks       int
	fn            func(lo, hi int)
	prods         [MaxProducts]Product // opMatVecs
	gate, up      []float32            // opSiLUMul (dst is dst)
}

// Pool is a fixed set of worker goroutines that split kernels over rows. The calling
// goroutine works too, so a Pool of n threads starts n-1 goroutines. Calls on one
// Pool are serialized (a Pool is safe for concurrent use, but concurrent calls wait
// for each other); use one Pool per concurrent forward pass. Methods panic after
// Close.
//
// Between calls the workers spin for up to spinFor (yielding their thread to other
// goroutines while they do) before they park, and the caller spins until its helpers
// finish: a decode step makes ~170 short calls, and waking a parked OS thread for
// each costs tens of microseconds on an idle machine and up to a scheduler time slice
// on a busy one.
type Pool struct {
	threads int
	mu      sync.Mutex
	closed  bool
	j       job
	seq     atomic.Uint64  // job sequence number; bumped to start a job, odd bits unused
	stop    atomic.Bool    // set by Close
	pending atomic.Int64   // places of the current job not yet finished or withdrawn
	places  atomic.Int64   // places of the current job helpers may still claim
	waiting atomic.Bool    // the caller parked in awaitHelpers
	done    chan struct{}  // the last helper's wake token for a parked caller
	next    atomic.Int64   // next chunk to take
	park    []parkState    // per helper
	scratch [][]float32    // per worker: a 4-row × kc float32 tile for bf16 MatMul
	xp      []float32      // permuted x of bf16 matrix-vector calls (grown on demand)
	exited  sync.WaitGroup // helpers that have returned (Close waits)
}

// parkState is one helper's parking slot: state is awake or parked, and wake
// carries the token that ends a park.
type parkState struct {
	state atomic.Int32
	wake  chan struct{}
	_     [48]byte // keep slots on separate cache lines
}

const (
	stateAwake int32 = iota
	stateParked
)

// spinFor bounds how long an idle worker polls for the next job before parking.
const spinFor = 50 * time.Microsecond

// NewPool starts a Pool of threads workers (the caller's goroutine counts as one);
// threads <= 0 means runtime.GOMAXPROCS(0). Close it when done.
func NewPool(threads int) *Pool {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	p := &Pool{threads: threads, park: make([]parkState, threads-1), scratch: make([][]float32, threads),
		done: make(chan struct{}, 1)}
	for i := range p.scratch {
		p.scratch[i] = make([]float32, 4*kc)
	}
	p.exited.Add(threads - 1)
	for i := range p.park {
		p.park[i].wake = make(chan struct{}, 1)
		go p.helper(i)
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
	p.stop.Store(true)
	p.seq.Add(1)
	p.wakeAll()
	p.exited.Wait()
}

// wakeAll hands a wake token to every parked helper.
func (p *Pool) wakeAll() {
	for i := range p.park {
		ps := &p.park[i]
		if ps.state.CompareAndSwap(stateParked, stateAwake) {
			ps.wake <- struct{}{}
		}
	}
}

// helper is worker id+1's loop: wait for a new sequence number, join the job if a
// place is left, work, repeat.
func (p *Pool) helper(id int) {
	defer p.exited.Done()
	ps := &p.park[id]
	var last uint64 // the sequence number at NewPool: this goroutine may start late
	for {
		last = p.await(ps, last)
		if p.stop.Load() {
			return
		}
		if p.places.Add(-1) < 0 {
			continue // no place left: the job is done or needs fewer helpers
		}
		p.work(id + 1)
		if p.pending.Add(-1) == 0 && p.waiting.CompareAndSwap(true, false) {
			p.done <- struct{}{}
		}
	}
}

// awaitHelpers returns once every helper that joined the current job has finished:
// it spins for up to spinFor (they usually finish about when the caller does), then
// parks until the last one hands over a token. Parking matters on a busy machine,
// where a helper may be descheduled mid-chunk and a spinning caller would burn the
// time slice the helper needs.
func (p *Pool) awaitHelpers() {
	var t0 time.Time
	for i := 0; p.pending.Load() > 0; i++ {
		if i&63 != 63 {
			continue
		}
		if i == 63 {
			t0 = time.Now()
			continue
		}
		if time.Since(t0) <= spinFor {
			runtime.Gosched()
			continue
		}
		p.waiting.Store(true)
		if p.pending.Load() == 0 && p.waiting.CompareAndSwap(true, false) {
			return
		}
		<-p.done
		return
	}
}

// await returns the first sequence number after last, spinning for up to spinFor
// and then parking until the dispatcher hands over a wake token.
func (p *Pool) await(ps *parkState, last uint64) uint64 {
	var t0 time.Time
	for i := 0; ; i++ {
		if s := p.seq.Load(); s != last {
			return s
		}
		if i&63 != 63 {
			continue
		}
		if i == 63 {
			t0 = time.Now()
		} else if time.Since(t0) > spinFor {
			ps.state.Store(stateParked)
			if s := p.seq.Load(); s != last {
				if !ps.state.CompareAndSwap(stateParked, stateAwake) {
					<-ps.wake // the dispatcher claimed the slot: take its token
				}
				return s
			}
			<-ps.wake
			i = 0
			continue
		}
		runtime.Gosched()
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
	helpers := int64(min(len(p.park), nchunks-1))
	if helpers > 0 {
		p.pending.Store(helpers)
		p.places.Store(helpers) // from here on helpers may join
		p.seq.Add(1)            // tells the waiting helpers

		p.wakeAll()
	}
	p.work(0)
	// Withdraw the places nobody claimed (a helper still parked or descheduled must
	// not hold the call up), then wait for those who joined; spin, since they finish
	// about when we do.
	if helpers > 0 {
		if left := p.places.Swap(0); left > 0 {
			p.pending.Add(-left)
		}
	}
	p.awaitHelpers()
	p.j = job{} // drop references
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
			matVecBF16Rows(j.dst, j.wb, j.x, j.xp, lo, hi, j.cols)
		case opMatMul:
			matMulRows(j.dst, j.x, j.w, j.n, j.rows, j.cols, lo, hi)
		case opMatMulBF16:
			matMulBF16Rows(j.dst, j.x, j.wb, j.n, j.rows, j.cols, lo, hi, p.scratch[id])
		case opMatVecs:
			matVecsRows(&j.prods, j.x, j.xp, j.cols, lo, hi)
		case opSiLUMul:
			SiLUMul(j.dst[lo:hi], j.gate[lo:hi], j.up[lo:hi])
		}
	}
}
