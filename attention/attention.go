package attention

import (
	"fmt"
	"math"
	"runtime"
	"sync"

	"github.com/lighttransfer/lighttransfer-go/internal/cpu"
)

// Params describes the head layout of one attention layer.
//
// Heads is the number of query heads, KVHeads the number of key/value heads
// (Heads must be a positive multiple of KVHeads), HeadDim the width of one head.
// Scale multiplies q·k before the softmax; 0 means float32(1/sqrt(HeadDim)).
// Threads is the number of goroutines a call may use: 0 or 1 runs on the
// caller's goroutine, more splits (KV head, query tile) work units over up to
// that many workers (capped at 4·GOMAXPROCS, at the number of units, so
// a single decode query uses at most KVHeads workers, and at the pool's size).
// Results are bit-identical for every Threads value. Pool, when not nil, is the
// worker pool those units run on (package model passes the one its dense kernels
// use, so a forward has one pool); nil means a process-wide pool of GOMAXPROCS
// workers.
type Params struct {
	Heads, KVHeads, HeadDim int
	Scale                   float32
	Threads                 int
	Pool                    *cpu.Pool
}

// scale returns the effective softmax scale.
func (p Params) scale() float32 {
	if p.Scale != 0 {
		return p.Scale
	}
	return float32(1 / math.Sqrt(float64(p.HeadDim)))
}

func (p Params) check() {
	if p.Heads <= 0 || p.KVHeads <= 0 || p.HeadDim <= 0 || p.Heads%p.KVHeads != 0 {
		panic(fmt.Sprintf("attention: bad params Heads=%d KVHeads=%d HeadDim=%d (need positive, Heads a multiple of KVHeads)",
			p.Heads, p.KVHeads, p.HeadDim))
	}
}

// mask is the streaming mask of one call: with window > 0, key position kp is visible to
// query position qp iff kp <= qp && (kp < sink || kp > qp-window), so the window counts the
// query's own token; window 0 is plain causal attention. Callers pass the sink and window of
// the layer's cache policy (kvcache.Policy), the one type that carries them.
type mask struct {
	sink, window int
}

// visible reports whether the key at position kp is visible to the query at position qp.
func (m mask) visible(qp, kp int32) bool {
	if kp > qp {
		return false
	}
	if m.window <= 0 {
		return true
	}
	return int64(kp) < int64(m.sink) || int64(kp) > int64(qp)-int64(m.window)
}

// KV is a set of cached keys and values split into segments. Slot order inside
// a segment is arbitrary; pos gives each key's absolute position. Segment i
// returns len(pos) tokens with k and v of length len(pos)*KVHeads*HeadDim
// (token-major). kvcache's layer view satisfies KV structurally.
type KV interface {
	NumSegments() int
	Segment(i int) (k, v []float32, pos []int32)
}

// Element types of a [QKV] segment (the values of kvcache.Type).
//
//	ElemF32   float32; the segment's data is read through KV.Segment
//	ElemBF16  bfloat16, 2 bytes little-endian an element (the high half of a float32)
//	ElemQ8    int8 (two's complement) with one float32 scale per group of
//	          min(32, HeadDim) consecutive elements of a token's head, x = q·scale
//	ElemQ4    4-bit codes c, two a byte (element e of a token's row in byte e/2, the low
//	          nibble for even e), rows of ceil(KVHeads·HeadDim/2) bytes; keys per channel
//	          over the segment, k = c·ks[e] + ks[W+e] (W = KVHeads·HeadDim); values per
//	          token per Q8-style group, v = c·vs[t][0][g] + vs[t][1][g]
const (
	ElemF32  = 0
	ElemBF16 = 1
	ElemQ8   = 2
	ElemQ4   = 3
)

// QKV is a KV whose segments may be stored in reduced precision; attention reads each segment
// where it lies and dequantizes one key tile at a time into a small buffer that stays in L1,
// so no float32 copy of the cache is ever made. SegmentQ returns segment i as stored: elem is
// one of the Elem constants; for ElemF32 the keys and values are read through Segment(i) and
// k, v may be nil; for ElemBF16 k and v are [len(pos)][KVHeads·HeadDim] elements of 2 bytes;
// for ElemQ8 of 1 byte, with ks and vs [len(pos)][KVHeads·ceil(HeadDim/min(32, HeadDim))]
// scales; for ElemQ4 as described there (ks [2][W], vs [len(pos)][2][groups]). kvcache's
// layers and views satisfy QKV structurally.
type QKV interface {
	KV
	SegmentQ(i int) (elem int, k, v []byte, ks, vs []float32, pos []int32)
}

// Segment is one run of cached tokens: K and V are [len(Pos)][KVHeads*HeadDim]
// and Pos holds each token's absolute position.
type Segment struct {
	K, V []float32
	Pos  []int32
}

// Segments is a list of Segment values; it implements KV.
type Segments []Segment

// NumSegments returns len(s).
func (s Segments) NumSegments() int { return len(s) }

// Segment returns the keys, values and positions of segment i.
func (s Segments) Segment(i int) (k, v []float32, pos []int32) {
	return s[i].K, s[i].V, s[i].Pos
}

// Attend computes causal softmax attention of len(qpos) queries at absolute
// positions qpos over every key in kv visible under the streaming mask (sink,
// window): with window > 0 a query at qp sees keys kp <= qp with kp < sink or
// kp > qp-window; window 0 is plain causal attention. It writing
// out [n][Heads*HeadDim] from q [n][Heads*HeadDim] (n = len(qpos)). It never
// materializes an n×n matrix (tiled, online softmax). If lse is not nil it
// receives [n][Heads] the natural log-sum-exp of scale·q·k over the visible
// keys; a query head with no visible key gets lse = -Inf and out = 0.
// out must not overlap q, kv or lse. p.Threads goroutines share the work.
// Attend panics on bad Params, a negative sink or window or any size mismatch.
func Attend(out, q []float32, qpos []int32, kv KV, sink, window int, p Params, lse []float32) {
	j := getJob(out, q, len(qpos), mask{sink, window}, p, lse)
	j.qpos = qpos
	j.setKV(kv)
	j.run()
	putJob(j)
}

// Prefill is Attend for a fresh sequence: n tokens at positions 0..n-1 attend
// over their own keys k and values v ([n][KVHeads*HeadDim] each). out and q are
// [n][Heads*HeadDim]; lse, if not nil, is [n][Heads]. Panics on size mismatch.
func Prefill(out, q, k, v []float32, n, sink, window int, p Params, lse []float32) {
	if n < 0 {
		panic(fmt.Sprintf("attention: negative n %d", n))
	}
	j := getJob(out, q, n, mask{sink, window}, p, lse)
	j.single = seg{k: k, v: v, n: n}
	j.checkSeg(&j.single)
	j.run()
	putJob(j)
}

// Decode computes attention of one query at position pos over kv: q and out
// are [Heads*HeadDim]. It equals Attend with a single query and no lse, and is
// the generation fast path. Panics on size mismatch.
func Decode(out, q []float32, pos int32, kv KV, sink, window int, p Params) {
	j := getJob(out, q, 1, mask{sink, window}, p, nil)
	j.qbase = pos
	j.setKV(kv)
	j.run()
	putJob(j)
}

// seg is one key segment; pos == nil means positions base, base+1, ... elem says how the
// keys and values are stored: float32 in k, v, or encoded in kb, vb (scales ks, vs).
type seg struct {
	k, v   []float32
	pos    []int32
	base   int32
	n      int
	elem   int
	kb, vb []byte
	ks, vs []float32
}

func (s *seg) at(i int) int32 {
	if s.pos != nil {
		return s.pos[i]
	}
	return s.base + int32(i)
}

// Tile sizes. keyTile keys are scored at once; a query tile holds
// max(1, rowTarget/G) queries of one KV head group (G query heads each).
const (
	keyTile   = 64
	rowTarget = 32
)

// job holds one call's arguments and the work-unit counter.
type job struct {
	out, q []float32
	lse    []float32
	qpos   []int32 // nil: qbase, qbase+1, ...
	qbase  int32
	n      int
	kv     KV  // nil: single
	qkv    QKV // kv as a QKV, when it is one
	single seg
	mask   mask
	heads  int
	kvh    int
	d      int
	g      int // query heads per KV head
	scale  float32
	tq     int // queries per tile
	nqt    int // query tiles
	gper   int // KV heads per work unit
	units  int
	nthr   int // Params.Threads
	pool   *cpu.Pool
}

var jobPool = sync.Pool{New: func() any { return new(job) }}

func getJob(out, q []float32, n int, m mask, p Params, lse []float32) *job {
	p.check()
	if m.sink < 0 || m.window < 0 {
		panic(fmt.Sprintf("attention: negative mask sink=%d window=%d", m.sink, m.window))
	}
	w := n * p.Heads * p.HeadDim
	if len(q) != w || len(out) != w {
		panic(fmt.Sprintf("attention: len(q)=%d len(out)=%d, want %d (n=%d × Heads=%d × HeadDim=%d)",
			len(q), len(out), w, n, p.Heads, p.HeadDim))
	}
	if lse != nil && len(lse) != n*p.Heads {
		panic(fmt.Sprintf("attention: len(lse)=%d, want %d (n=%d × Heads=%d)", len(lse), n*p.Heads, n, p.Heads))
	}
	j := jobPool.Get().(*job)
	j.out, j.q, j.lse, j.n = out, q, lse, n
	j.mask = m
	j.heads, j.kvh, j.d = p.Heads, p.KVHeads, p.HeadDim
	j.g = p.Heads / p.KVHeads
	j.scale = p.scale()
	j.tq = max(1, rowTarget/j.g)
	j.nqt = (n + j.tq - 1) / j.tq
	// One goroutine walks all KV heads per key tile (contiguous K/V reads);
	// several split KV heads into separate units.
	j.gper = j.kvh
	if p.Threads > 1 {
		j.gper = 1
	}
	j.units = j.nqt * (j.kvh / j.gper)
	j.nthr, j.pool = p.Threads, p.Pool
	return j
}

func putJob(j *job) {
	// Drop references so pooled jobs do not keep caller memory alive.
	j.out, j.q, j.lse, j.qpos, j.kv, j.qkv, j.single, j.pool = nil, nil, nil, nil, nil, nil, seg{}, nil
	j.qbase = 0
	jobPool.Put(j)
}

// q8Groups returns the Q8 scale groups of one head of d elements: its group size and count.
func q8Groups(d int) (gs, n int) {
	gs = min(32, d)
	return gs, (d + gs - 1) / gs
}

func (j *job) checkSeg(s *seg) {
	w := s.n * j.kvh * j.d
	switch s.elem {
	case ElemF32:
		if len(s.k) != w || len(s.v) != w {
			panic(fmt.Sprintf("attention: segment len(k)=%d len(v)=%d, want %d (%d tokens × KVHeads=%d × HeadDim=%d)",
				len(s.k), len(s.v), w, s.n, j.kvh, j.d))
		}
	case ElemBF16:
		if len(s.kb) != 2*w || len(s.vb) != 2*w {
			panic(fmt.Sprintf("attention: bf16 segment of %d tokens has %d and %d bytes, want %d", s.n, len(s.kb), len(s.vb), 2*w))
		}
	case ElemQ8:
		_, g := q8Groups(j.d)
		ns := s.n * j.kvh * g
		if len(s.kb) != w || len(s.vb) != w || len(s.ks) != ns || len(s.vs) != ns {
			panic(fmt.Sprintf("attention: q8 segment of %d tokens has %d, %d bytes and %d, %d scales, want %d and %d",
				s.n, len(s.kb), len(s.vb), len(s.ks), len(s.vs), w, ns))
		}
	case ElemQ4:
		if s.n == 0 {
			break // an empty segment needs no scales
		}
		kd := j.kvh * j.d
		_, g := q8Groups(j.d)
		rb := s.n * ((kd + 1) / 2)
		if len(s.kb) != rb || len(s.vb) != rb || len(s.ks) != 2*kd || len(s.vs) != s.n*2*j.kvh*g {
			panic(fmt.Sprintf("attention: q4 segment of %d tokens has %d, %d bytes and %d, %d scales, want %d, %d and %d",
				s.n, len(s.kb), len(s.vb), len(s.ks), len(s.vs), rb, 2*kd, s.n*2*j.kvh*g))
		}
	default:
		panic(fmt.Sprintf("attention: segment element type %d unknown", s.elem))
	}
}

// setKV records the call's KV and checks every segment's sizes.
func (j *job) setKV(kv KV) {
	if kv == nil {
		panic("attention: nil KV")
	}
	j.kv = kv
	j.qkv, _ = kv.(QKV)
	var s seg
	for i, ns := 0, kv.NumSegments(); i < ns; i++ {
		j.segment(i, &s)
		j.checkSeg(&s)
	}
}

func (j *job) numSegs() int {
	if j.kv == nil {
		return 1
	}
	return j.kv.NumSegments()
}

func (j *job) segment(i int, s *seg) {
	if j.kv == nil {
		*s = j.single
		return
	}
	if j.qkv != nil {
		elem, kb, vb, ks, vs, pos := j.qkv.SegmentQ(i)
		if elem != ElemF32 {
			*s = seg{pos: pos, n: len(pos), elem: elem, kb: kb, vb: vb, ks: ks, vs: vs}
			return
		}
	}
	k, v, pos := j.kv.Segment(i)
	*s = seg{k: k, v: v, pos: pos, n: len(pos)}
}

func (j *job) qposAt(t int) int32 {
	if j.qpos != nil {
		return j.qpos[t]
	}
	return j.qbase + int32(t)
}

// run executes every work unit, on the caller's goroutine or over min(Threads, units)
// workers of the pool (Params.Pool, else internal/cpu's shared pool), which take the units
// one at a time.
func (j *job) run() {
	if j.units == 0 {
		return
	}
	t := min(j.nthr, j.units, 4*runtime.GOMAXPROCS(0))
	if t <= 1 {
		sc := getScratch(j)
		for u := 0; u < j.units; u++ {
			j.work(u, sc)
		}
		scratchPool.Put(sc)
		return
	}
	pool := j.pool
	if pool == nil {
		pool = cpu.Shared()
	}
	pool.Run(j, j.units, 1, t)
}

// Chunk computes work units [lo, hi) (cpu.Task).
func (j *job) Chunk(_, lo, hi int) {
	sc := getScratch(j)
	for u := lo; u < hi; u++ {
		j.work(u, sc)
	}
	scratchPool.Put(sc)
}
