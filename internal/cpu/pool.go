package cpu

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Task is work split into units: Chunk computes units [lo, hi) on the pool's worker number
// worker (0 is the calling goroutine, 1..Threads()-1 the pool's own), so a task may keep
// per-worker scratch. Chunks of one Run may run concurrently.
type Task interface {
	Chunk(worker, lo, hi int)
}

// Pool is a fixed set of worker goroutines that run Tasks. The calling goroutine works too,
// so a Pool of n threads starts n-1 goroutines. Calls on one Pool are serialized (a Pool is
// safe for concurrent use, but concurrent calls wait for each other). Methods panic after
// Close.
//
// Between calls the workers spin for up to spinFor (yielding their thread to other
// goroutines while they do) before they park, and the caller spins until its helpers
// finish: a decode step makes ~200 short calls, and waking a parked OS thread for each costs
// tens of microseconds on an idle machine and up to a scheduler time slice on a busy one.
type Pool struct {
	threads int
	mu      sync.Mutex
	closed  bool
	task    Task
	total   int
	chunk   int
	nchunks int
	seq     atomic.Uint64  // job sequence number; bumped to start a job
	stop    atomic.Bool    // set by Close
	pending atomic.Int64   // places of the current job not yet finished or withdrawn
	places  atomic.Int64   // places of the current job helpers may still claim
	waiting atomic.Bool    // the caller parked in awaitHelpers
	done    chan struct{}  // the last helper's wake token for a parked caller
	next    atomic.Int64   // next chunk to take
	park    []parkState    // per helper
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
	p := &Pool{threads: threads, park: make([]parkState, threads-1), done: make(chan struct{}, 1)}
	p.exited.Add(threads - 1)
	for i := range p.park {
		p.park[i].wake = make(chan struct{}, 1)
		go p.helper(i)
	}
	return p
}

var (
	sharedOnce sync.Once
	shared     *Pool
)

// Shared returns the process-wide Pool of GOMAXPROCS workers (at the first call), for kernels
// called without a pool of their own. It is never closed.
func Shared() *Pool {
	sharedOnce.Do(func() { shared = NewPool(0) })
	return shared
}

// Threads returns the number of workers, the caller's goroutine included.
func (p *Pool) Threads() int { return p.threads }

// Close stops the worker goroutines. It is idempotent; Run panics after it.
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

// ChunkSize returns the chunk size Run splits total units into when the caller has no better
// idea: about eight chunks per worker, at least minChunk, rounded up to a multiple of align.
func (p *Pool) ChunkSize(total, minChunk, align int) int {
	chunk := (total + p.threads*8 - 1) / (p.threads * 8)
	chunk = max(chunk, minChunk, 1)
	align = max(align, 1)
	return (chunk + align - 1) / align * align
}

// Run calls t.Chunk over chunks of chunk units that together cover [0, total) exactly once,
// on at most workers workers (<= 0: all of them; the caller is one), and returns when all are
// done. It allocates nothing. It panics on a negative total, a chunk < 1, or after Close.
func (p *Pool) Run(t Task, total, chunk, workers int) {
	if total < 0 || chunk < 1 {
		panic(fmt.Sprintf("cpu: Run: total=%d chunk=%d", total, chunk))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		panic("cpu: Pool used after Close")
	}
	if total == 0 {
		return
	}
	nchunks := (total + chunk - 1) / chunk
	p.task, p.total, p.chunk, p.nchunks = t, total, chunk, nchunks
	p.next.Store(0)
	helpers := min(len(p.park), nchunks-1)
	if workers > 0 {
		helpers = min(helpers, workers-1)
	}
	if helpers > 0 {
		p.pending.Store(int64(helpers))
		p.places.Store(int64(helpers)) // from here on helpers may join
		p.seq.Add(1)                   // tells the waiting helpers
		p.wakeAll()
	}
	p.work(0)
	// Withdraw the places nobody claimed (a helper still parked or descheduled must
	// not hold the call up), then wait for those who joined.
	if helpers > 0 {
		if left := p.places.Swap(0); left > 0 {
			p.pending.Add(-left)
		}
	}
	p.awaitHelpers()
	p.task = nil // drop the reference
}

// work takes chunks until none are left.
func (p *Pool) work(id int) {
	for {
		c := int(p.next.Add(1) - 1)
		if c >= p.nchunks {
			return
		}
		lo := c * p.chunk
		p.task.Chunk(id, lo, min(lo+p.chunk, p.total))
	}
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
