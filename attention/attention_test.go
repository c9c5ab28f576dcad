package attention

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"
)

// Tolerances. Attend accumulates in float32 (dot products of up to 256 terms,
// running softmax sums over up to a few hundred keys) while the oracle works
// in float64. Values are in [-1, 1], so outputs are convex combinations
// bounded by 1 and an absolute bound is a relative bound on the value scale.
// float32 epsilon is 1.2e-7; with queries in [-1, 1] the observed worst case
// over the table is 5e-7, so 1e-6 is the bound, still far below the effect of
// any wrong term (a single mis-masked key among 300 moves outputs by ~1e-3).
// Scores are rounded relative to their size and exp turns an absolute score
// error into a relative weight error, so with query amplitude a (scores up to
// ~a·sqrt(HeadDim)/3·scale) the bound is 1e-6·max(1, a): observed 2e-6 at a=8
// and a=16. lse is compared relative to max(1, |lse|) for the same reason.
const (
	outTol = 1e-6
	lseTol = 1e-6
)

// attCase describes one Attend check: n queries at positions cache..cache+n-1
// over a cache of positions 0..cache-1 (split into nseg shuffled segments)
// plus the queries' own keys as a last, ordered segment.
type attCase struct {
	kvh, ratio, d int
	cache, n      int
	mask          mask
	nseg          int
	qamp          float32 // query amplitude; larger gives peakier softmax
	shuffleQ      bool    // permute query positions
	drop          int     // drop every drop-th cached key (0: none)
	threads       int
}

func (c attCase) String() string {
	return fmt.Sprintf("kvh%d_g%d_d%d_cache%d_n%d_sink%d_win%d_seg%d_amp%g_sq%v_drop%d_t%d",
		c.kvh, c.ratio, c.d, c.cache, c.n, c.mask.sink, c.mask.window, c.nseg, c.qamp, c.shuffleQ, c.drop, c.threads)
}

type attData struct {
	p      Params
	q      []float32
	qpos   []int32
	k, v   []float32 // all cache+n tokens, ordered by position
	kv     Segments
	nTotal int
}

func makeData(c attCase, seed uint64) attData {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	p := Params{Heads: c.kvh * c.ratio, KVHeads: c.kvh, HeadDim: c.d, Threads: c.threads}
	w := c.kvh * c.d
	total := c.cache + c.n
	amp := c.qamp
	if amp == 0 {
		amp = 1
	}
	dt := attData{p: p, nTotal: total}
	dt.q = randSlice(r, c.n*p.Heads*c.d, amp)
	dt.k = randSlice(r, total*w, 1)
	dt.v = randSlice(r, total*w, 1)
	var ck, cv []float32
	var cpos []int32
	for t := 0; t < c.cache; t++ {
		if c.drop > 0 && t%c.drop == c.drop-1 {
			continue
		}
		ck = append(ck, dt.k[t*w:][:w]...)
		cv = append(cv, dt.v[t*w:][:w]...)
		cpos = append(cpos, int32(t))
	}
	if c.cache > 0 {
		dt.kv = splitSegments(r, ck, cv, cpos, w, c.nseg)
	}
	dt.qpos = make([]int32, c.n)
	for i := range dt.qpos {
		dt.qpos[i] = int32(c.cache + i)
	}
	dt.kv = append(dt.kv, Segment{K: dt.k[c.cache*w:], V: dt.v[c.cache*w:], Pos: append([]int32(nil), dt.qpos...)})
	if c.shuffleQ {
		r.Shuffle(len(dt.qpos), func(a, b int) { dt.qpos[a], dt.qpos[b] = dt.qpos[b], dt.qpos[a] })
	}
	return dt
}

func requireClose(t *testing.T, got, want []float32, tol float64, what string) {
	t.Helper()
	require.Len(t, got, len(want))
	worst, at := 0.0, -1
	for i := range want {
		g, w := float64(got[i]), float64(want[i])
		if math.IsInf(w, -1) || math.IsInf(g, -1) {
			require.Equal(t, w, g, "%s[%d]", what, i)
			continue
		}
		e := math.Abs(g-w) / math.Max(1, math.Abs(w))
		if !(e <= worst) {
			worst, at = e, i
		}
	}
	require.LessOrEqual(t, worst, tol, "%s: worst error %g at %d (got %g want %g)", what, worst, at, got[max(at, 0)], want[max(at, 0)])
}

func checkCase(t *testing.T, c attCase, seed uint64) {
	t.Helper()
	dt := makeData(c, seed)
	p := dt.p
	outTol, lseTol := outTol*max(1, float64(c.qamp)), lseTol*max(1, float64(c.qamp))
	want, wantLse := naiveAttend(dt.q, dt.qpos, dt.kv, c.mask, p)
	out := make([]float32, len(dt.q))
	lse := make([]float32, c.n*p.Heads)
	Attend(out, dt.q, dt.qpos, dt.kv, c.mask.sink, c.mask.window, p, lse)
	requireClose(t, out, want, outTol, "out")
	requireClose(t, lse, wantLse, lseTol, "lse")

	// Threads must not change a single bit.
	p4 := p
	p4.Threads = 4
	out4 := make([]float32, len(out))
	lse4 := make([]float32, len(lse))
	Attend(out4, dt.q, dt.qpos, dt.kv, c.mask.sink, c.mask.window, p4, lse4)
	requireBits(t, out4, out, "out threads=4")
	requireBits(t, lse4, lse, "lse threads=4")

	// A fresh sequence through Prefill equals Attend over one ordered segment.
	if c.cache == 0 && !c.shuffleQ {
		outP := make([]float32, len(out))
		lseP := make([]float32, len(lse))
		Prefill(outP, dt.q, dt.k, dt.v, c.n, c.mask.sink, c.mask.window, p, lseP)
		requireClose(t, outP, want, outTol, "prefill out")
		requireClose(t, lseP, wantLse, lseTol, "prefill lse")
		requireBits(t, outP, out, "prefill vs attend")
	}
	// Decode of each of a few queries equals Attend of that single query.
	for _, i := range []int{0, c.n / 2, c.n - 1} {
		hd := p.Heads * p.HeadDim
		outD := make([]float32, hd)
		Decode(outD, dt.q[i*hd:][:hd], dt.qpos[i], dt.kv, c.mask.sink, c.mask.window, p)
		requireClose(t, outD, want[i*hd:][:hd], outTol, "decode")
	}
}

func requireBits(t *testing.T, got, want []float32, what string) {
	t.Helper()
	require.Len(t, got, len(want))
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s: element %d = %v, want bit-identical %v", what, i, got[i], want[i])
		}
	}
}

var testMasks = []mask{
	{}, {0, 1}, {2, 6}, {4, 32},
	{2, 1}, {4, 6}, {0, 32}, {2, 32},
}

// TestAttendSweep covers GQA ratios 1, 2, 4, 7, head widths 8, 64, 128, all
// test masks and ragged sequence lengths (not multiples of the tile sizes).
func TestAttendSweep(t *testing.T) {
	ns := []int{1, 2, 5, 33, 63, 65, 97, 130, 200}
	i := 0
	for _, ratio := range []int{1, 2, 4, 7} {
		for _, d := range []int{8, 64, 128} {
			for _, m := range testMasks {
				n := ns[i%len(ns)]
				if (d == 128 && ratio == 7) || raceEnabled {
					n = min(n, 65) // keeps the oracle cheap (and -race under a minute)
				}
				c := attCase{kvh: 1 + i%2, ratio: ratio, d: d, n: n, mask: m, nseg: 1}
				seed := uint64(i)
				i++
				t.Run(c.String(), func(t *testing.T) { checkCase(t, c, seed) })
			}
		}
	}
}

// TestAttendTable holds hand-picked cases: chunked prefill continuing a
// cache, shuffled segments, long sequences, peaky softmax and holes in the cache.
func TestAttendTable(t *testing.T) {
	cases := []attCase{
		// Chunked prefill: queries 100..131 over cache 0..99 plus the chunk.
		{kvh: 2, ratio: 7, d: 64, cache: 100, n: 32, nseg: 1},
		{kvh: 2, ratio: 7, d: 64, cache: 100, n: 32, nseg: 3, mask: mask{4, 32}},
		{kvh: 2, ratio: 2, d: 128, cache: 100, n: 32, nseg: 4, mask: mask{2, 6}},
		{kvh: 1, ratio: 4, d: 8, cache: 100, n: 32, nseg: 5, mask: mask{0, 1}},
		// Long and ragged.
		{kvh: 1, ratio: 1, d: 64, n: 300, nseg: 1},
		{kvh: 2, ratio: 2, d: 8, n: 301, nseg: 1, mask: mask{4, 32}},
		{kvh: 1, ratio: 7, d: 8, n: 299, nseg: 1, mask: mask{2, 6}},
		{kvh: 1, ratio: 4, d: 64, cache: 250, n: 7, nseg: 6, mask: mask{4, 32}},
		// Shuffled query order and a cache with holes (streaming-like).
		{kvh: 2, ratio: 4, d: 64, cache: 150, n: 40, nseg: 3, shuffleQ: true},
		{kvh: 1, ratio: 2, d: 64, cache: 150, n: 40, nseg: 2, drop: 3, mask: mask{4, 6}},
		{kvh: 1, ratio: 7, d: 8, cache: 90, n: 20, nseg: 2, drop: 2, mask: mask{0, 1}},
		// Peaky softmax (large scores) stresses the running max.
		{kvh: 2, ratio: 1, d: 128, cache: 70, n: 70, nseg: 2, qamp: 8},
		{kvh: 1, ratio: 4, d: 64, n: 150, nseg: 1, qamp: 16, mask: mask{4, 32}},
		// Odd head widths exercise the unrolled loops' tails.
		{kvh: 3, ratio: 3, d: 13, cache: 40, n: 41, nseg: 2},
		{kvh: 1, ratio: 5, d: 1, n: 67, nseg: 1, mask: mask{1, 3}},
		{kvh: 1, ratio: 1, d: 256, cache: 20, n: 9, nseg: 1},
	}
	for i, c := range cases {
		seed := uint64(1000 + i)
		t.Run(c.String(), func(t *testing.T) { checkCase(t, c, seed) })
	}
}

// TestAttendNothingVisible checks queries that see no key: out is 0 and lse -Inf.
func TestAttendNothingVisible(t *testing.T) {
	p := Params{Heads: 4, KVHeads: 2, HeadDim: 8}
	r := rand.New(rand.NewPCG(7, 7))
	w := p.KVHeads * p.HeadDim
	// Keys at positions 10..19; queries at 0..4 (all keys in the future) and 15.
	kv := Segments{{K: randSlice(r, 10*w, 1), V: randSlice(r, 10*w, 1), Pos: []int32{19, 10, 11, 12, 13, 14, 15, 16, 17, 18}}}
	qpos := []int32{0, 1, 2, 3, 4, 15}
	q := randSlice(r, len(qpos)*p.Heads*p.HeadDim, 1)
	for _, m := range []mask{{}, {0, 1}, {4, 3}} {
		out := randSlice(r, len(q), 1) // garbage that must be overwritten
		lse := make([]float32, len(qpos)*p.Heads)
		Attend(out, q, qpos, kv, m.sink, m.window, p, lse)
		want, wantLse := naiveAttend(q, qpos, kv, m, p)
		requireClose(t, out, want, outTol, "out")
		requireClose(t, lse, wantLse, lseTol, "lse")
		for i := 0; i < 5*p.Heads; i++ {
			require.True(t, math.IsInf(float64(lse[i]), -1), "lse[%d]=%v", i, lse[i])
		}
		for i := 0; i < 5*p.Heads*p.HeadDim; i++ {
			require.Zero(t, out[i])
		}
	}
	// An empty KV and a KV of empty segments.
	out := []float32{1, 2, 3, 4}
	lse := []float32{1, 1}
	Attend(out, []float32{1, 1, 1, 1}, []int32{3}, Segments{{}, {}}, 0, 0, Params{Heads: 2, KVHeads: 1, HeadDim: 2}, lse)
	require.Equal(t, []float32{0, 0, 0, 0}, out)
	require.True(t, math.IsInf(float64(lse[0]), -1) && math.IsInf(float64(lse[1]), -1))
	Attend(nil, nil, nil, Segments{}, 0, 0, Params{Heads: 2, KVHeads: 1, HeadDim: 2}, nil) // n = 0
}

// TestAttendThreads checks bit-identical results over thread counts on a
// case with many work units.
func TestAttendThreads(t *testing.T) {
	c := attCase{kvh: 2, ratio: 7, d: 64, cache: 200, n: 100, nseg: 3, mask: mask{4, 32}}
	dt := makeData(c, 99)
	var ref, refLse []float32
	for _, th := range []int{0, 1, 2, 3, 4, 16, 1000} {
		p := dt.p
		p.Threads = th
		out := make([]float32, len(dt.q))
		lse := make([]float32, c.n*p.Heads)
		Attend(out, dt.q, dt.qpos, dt.kv, c.mask.sink, c.mask.window, p, lse)
		if ref == nil {
			ref, refLse = out, lse
			continue
		}
		requireBits(t, out, ref, fmt.Sprintf("threads=%d out", th))
		requireBits(t, lse, refLse, fmt.Sprintf("threads=%d lse", th))
	}
}

// TestScaleParam checks an explicit Scale against the oracle.
func TestScaleParam(t *testing.T) {
	c := attCase{kvh: 1, ratio: 2, d: 16, n: 50, nseg: 1}
	dt := makeData(c, 3)
	p := dt.p
	p.Scale = 0.7
	want, wantLse := naiveAttend(dt.q, dt.qpos, dt.kv, mask{}, p)
	out := make([]float32, len(dt.q))
	lse := make([]float32, c.n*p.Heads)
	Attend(out, dt.q, dt.qpos, dt.kv, 0, 0, p, lse)
	requireClose(t, out, want, outTol, "out")
	requireClose(t, lse, wantLse, lseTol, "lse")
	require.Equal(t, float32(0.25), Params{HeadDim: 16}.scale())
}

func TestMaskVisible(t *testing.T) {
	cases := []struct {
		m      mask
		qp, kp int32
		want   bool
	}{
		{mask{}, 5, 5, true}, {mask{}, 5, 6, false}, {mask{}, 5, 0, true},
		{mask{0, 1}, 5, 5, true}, {mask{0, 1}, 5, 4, false},
		{mask{2, 3}, 10, 1, true}, {mask{2, 3}, 10, 2, false},
		{mask{2, 3}, 10, 7, false}, {mask{2, 3}, 10, 8, true},
		{mask{2, 3}, 10, 11, false}, {mask{4, 1020}, 1023, 0, true},
		{mask{4, 1020}, 2000, 980, false}, {mask{4, 1020}, 2000, 981, true},
	}
	for _, c := range cases {
		require.Equal(t, c.want, c.m.visible(c.qp, c.kp), "%+v qp=%d kp=%d", c.m, c.qp, c.kp)
	}
}

func TestAttendPanics(t *testing.T) {
	p := Params{Heads: 2, KVHeads: 1, HeadDim: 4}
	q := make([]float32, 8)
	kv := Segments{{K: make([]float32, 4), V: make([]float32, 4), Pos: []int32{0}}}
	cases := map[string]func(){
		"short out": func() { Attend(make([]float32, 7), q, []int32{0}, kv, 0, 0, p, nil) },
		"short q":   func() { Attend(make([]float32, 8), q[:7], []int32{0}, kv, 0, 0, p, nil) },
		"bad lse":   func() { Attend(make([]float32, 8), q, []int32{0}, kv, 0, 0, p, make([]float32, 3)) },
		"bad heads": func() {
			Attend(make([]float32, 8), q, []int32{0}, kv, 0, 0, Params{Heads: 2, KVHeads: 3, HeadDim: 4}, nil)
		},
		"zero dim": func() { Attend(nil, nil, nil, kv, 0, 0, Params{Heads: 1, KVHeads: 1}, nil) },
		"bad segment": func() {
			Attend(make([]float32, 8), q, []int32{0}, Segments{{K: make([]float32, 3), V: make([]float32, 4), Pos: []int32{0}}}, 0, 0, p, nil)
		},
		"nil kv":        func() { Attend(make([]float32, 8), q, []int32{0}, nil, 0, 0, p, nil) },
		"negative mask": func() { Attend(make([]float32, 8), q, []int32{0}, kv, 0, -1, p, nil) },
		"prefill k":     func() { Prefill(make([]float32, 8), q, make([]float32, 3), make([]float32, 4), 1, 0, 0, p, nil) },
		"prefill n":     func() { Prefill(make([]float32, 8), q, make([]float32, 4), make([]float32, 4), 2, 0, 0, p, nil) },
		"decode q":      func() { Decode(make([]float32, 8), q[:4], 0, kv, 0, 0, p) },
	}
	for name, f := range cases {
		require.Panics(t, f, name)
	}
}

// TestNoAllocs checks the hot paths allocate nothing once the pools are warm.
func TestNoAllocs(t *testing.T) {
	if testing.CoverMode() != "" || raceEnabled {
		t.Skip("allocation counts are not meaningful under coverage or -race")
	}
	// The scratch buffers live in sync.Pools, which a collection may empty; with the collector
	// off, a count above zero means an allocation on every call, not a refill after a GC.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	c := attCase{kvh: 2, ratio: 7, d: 64, cache: 100, n: 40, nseg: 2}
	dt := makeData(c, 5)
	p := dt.p
	out := make([]float32, len(dt.q))
	lse := make([]float32, c.n*p.Heads)
	var kv KV = dt.kv
	hd := p.Heads * p.HeadDim
	require.Zero(t, testing.AllocsPerRun(20, func() { Attend(out, dt.q, dt.qpos, kv, 0, 0, p, lse) }))
	require.Zero(t, testing.AllocsPerRun(20, func() { Decode(out[:hd], dt.q[:hd], 140, kv, 4, 32, p) }))
	// The integer Q8 and Q4 decode routes, on one and two threads.
	p2 := p
	p2.Threads = 2
	for _, elem := range []int{ElemQ8, ElemQ4} {
		qs, _ := quantize(dt.kv, elem, c.d)
		var qkv KV = qs
		for _, pp := range []Params{p, p2} {
			// With two threads the second unit's scratch may be taken on another P than the
			// one it was put back on, and a sync.Pool cannot hand out another P's private
			// slot, so the pool grows by a scratch (about 20 allocations) now and then until
			// each P holds enough. Warm it and average over many runs: a per-call allocation
			// still reads as at least 1, a few late refills do not.
			call := func() { Decode(out[:hd], dt.q[:hd], 140, qkv, 0, 0, pp) }
			for range 50 {
				call()
			}
			require.Zero(t, testing.AllocsPerRun(200, call), "elem %d threads %d", elem, pp.Threads)
		}
	}
	require.Zero(t, testing.AllocsPerRun(20, func() {
		Prefill(out, dt.q, dt.k[:c.n*p.KVHeads*p.HeadDim], dt.v[:c.n*p.KVHeads*p.HeadDim], c.n, 0, 0, p, lse)
	}))
}
