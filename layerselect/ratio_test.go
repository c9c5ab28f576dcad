package layerselect_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lighttransfer/lighttransfer-go/layerselect"
)

// problem is one random prompt: post-RoPE q, k and the full-causal lse.
type problem struct {
	q, k, lse []float32
	n         int
	h         layerselect.Heads
}

func scaleOf(h layerselect.Heads) float64 {
	if h.Scale != 0 {
		return float64(h.Scale)
	}
	return 1 / math.Sqrt(float64(h.HeadDim))
}

// scores returns the float64 scaled scores [Heads][n][n] (all keys, no mask).
func scores(p problem) [][][]float64 {
	h := p.h
	qw, kw, group, sc := h.Heads*h.HeadDim, h.KVHeads*h.HeadDim, h.Heads/h.KVHeads, scaleOf(h)
	out := make([][][]float64, h.Heads)
	for hd := range h.Heads {
		out[hd] = make([][]float64, p.n)
		for t := range p.n {
			out[hd][t] = make([]float64, p.n)
			for key := range p.n {
				var dot float64
				for i := range h.HeadDim {
					dot += float64(p.q[t*qw+hd*h.HeadDim+i]) * float64(p.k[key*kw+(hd/group)*h.HeadDim+i])
				}
				out[hd][t][key] = dot * sc
			}
		}
	}
	return out
}

// newProblem draws q and k (entries ~ spread·U(-1,1), so attention is far from
// uniform) and computes lse exactly (float64) over causal keys, rounded to
// float32 as an attention kernel would return it.
func newProblem(rng *rand.Rand, n int, h layerselect.Heads, spread float32) problem {
	p := problem{n: n, h: h,
		q:   make([]float32, n*h.Heads*h.HeadDim),
		k:   make([]float32, n*h.KVHeads*h.HeadDim),
		lse: make([]float32, n*h.Heads)}
	for i := range p.q {
		p.q[i] = spread * (rng.Float32()*2 - 1)
	}
	for i := range p.k {
		p.k[i] = spread * (rng.Float32()*2 - 1)
	}
	s := scores(p)
	for hd := range h.Heads {
		for t := range n {
			m := math.Inf(-1)
			for key := 0; key <= t; key++ {
				m = math.Max(m, s[hd][t][key])
			}
			var sum float64
			for key := 0; key <= t; key++ {
				sum += math.Exp(s[hd][t][key] - m)
			}
			p.lse[t*h.Heads+hd] = float32(m + math.Log(sum))
		}
	}
	return p
}

// naiveRatio is the oracle: it builds the full causal softmax matrix A
// (float64) and averages Σ_{k∈S, k≤q} A[h,q,k] over heads and the last queries.
// causal=false leaves out k≤q (the mistake docs/method.md §2 warns about) while still
// normalising A causally.
func naiveRatio(p problem, w layerselect.Window, causal bool) float64 {
	s := scores(p)
	inS := func(key int) bool { return key < w.Sink || key >= p.n-w.Recent }
	first := max(0, p.n-w.Last)
	var total float64
	for hd := range p.h.Heads {
		for t := first; t < p.n; t++ {
			m := math.Inf(-1)
			for key := 0; key <= t; key++ {
				m = math.Max(m, s[hd][t][key])
			}
			var z float64
			for key := 0; key <= t; key++ {
				z += math.Exp(s[hd][t][key] - m)
			}
			for key := range p.n {
				if inS(key) && (key <= t || !causal) {
					total += math.Exp(s[hd][t][key]-m) / z
				}
			}
		}
	}
	return total / float64((p.n-first)*p.h.Heads)
}

// Tolerance: both sides use the same float32 inputs and float64 arithmetic;
// the one float32 rounding is lse (relative 6e-8 of |lse| <= ~20, i.e. ~1e-6
// in log-mass, so ~1e-6 relative in each mass). 1e-5 absolute is ample.
const ratioTol = 1e-5

func TestLazyRatioAgainstNaive(t *testing.T) {
	gqa := func(kv int) layerselect.Heads { return layerselect.Heads{Heads: 4, KVHeads: kv, HeadDim: 8} }
	tests := []struct {
		name   string
		n      int
		w      layerselect.Window
		h      layerselect.Heads
		spread float32
	}{
		{"basic mha", 40, layerselect.Window{Sink: 2, Recent: 8, Last: 6}, gqa(4), 2},
		{"gqa 2", 40, layerselect.Window{Sink: 2, Recent: 8, Last: 6}, gqa(2), 2},
		{"gqa 4", 40, layerselect.Window{Sink: 2, Recent: 8, Last: 6}, gqa(1), 2},
		{"n = sink+recent+1", 11, layerselect.Window{Sink: 2, Recent: 8, Last: 32}, gqa(2), 2},
		{"n = sink+recent+2", 12, layerselect.Window{Sink: 2, Recent: 8, Last: 3}, gqa(1), 3},
		{"last > n", 20, layerselect.Window{Sink: 1, Recent: 4, Last: 100}, gqa(2), 2},
		{"last > recent", 30, layerselect.Window{Sink: 3, Recent: 4, Last: 12}, gqa(4), 2},
		{"last = 1", 30, layerselect.Window{Sink: 3, Recent: 4, Last: 1}, gqa(4), 2},
		{"no sink", 25, layerselect.Window{Sink: 0, Recent: 5, Last: 8}, gqa(2), 2},
		{"no recent", 25, layerselect.Window{Sink: 4, Recent: 0, Last: 8}, gqa(2), 2},
		{"empty S", 25, layerselect.Window{Sink: 0, Recent: 0, Last: 8}, gqa(2), 2},
		{"explicit scale", 30, layerselect.Window{Sink: 2, Recent: 6, Last: 10}, layerselect.Heads{Heads: 6, KVHeads: 3, HeadDim: 5, Scale: 0.7}, 2},
		{"peaky", 50, layerselect.Window{Sink: 4, Recent: 8, Last: 16}, layerselect.Heads{Heads: 2, KVHeads: 1, HeadDim: 16}, 5},
		{"n = 1, empty window", 1, layerselect.Window{Sink: 0, Recent: 0, Last: 4}, gqa(1), 1},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			p := newProblem(rng, tc.n, tc.h, tc.spread)
			got := layerselect.LazyRatio(p.q, p.k, p.lse, p.n, tc.w, tc.h)
			want := naiveRatio(p, tc.w, true)
			require.InDelta(t, want, got, ratioTol)
			require.True(t, got >= 0 && got <= 1+ratioTol, "ratio %v", got)
			// LazyRatioOf over rows held apart gives the same bits and asks only for the
			// documented rows.
			rp := &rowPrompt{p: p, w: tc.w}
			require.Equal(t, got, layerselect.LazyRatioOf(rp, p.n, tc.w, tc.h))
			require.Empty(t, rp.bad)
		})
	}
}

// TestLazyRatioShortPrompt: with n <= Sink+Recent every key is in S (the sets
// overlap or touch) and the ratio is exactly 1; the naive twin agrees up to
// rounding.
func TestLazyRatioShortPrompt(t *testing.T) {
	h := layerselect.Heads{Heads: 4, KVHeads: 2, HeadDim: 4}
	for _, tc := range []struct {
		n int
		w layerselect.Window
	}{
		{10, layerselect.Window{Sink: 4, Recent: 6, Last: 3}}, // sets touch
		{8, layerselect.Window{Sink: 4, Recent: 6, Last: 3}},  // sets overlap
		{3, layerselect.Window{Sink: 4, Recent: 6, Last: 32}}, // sink alone covers all
		{5, layerselect.Window{Sink: 0, Recent: 5, Last: 2}},  // recent alone covers all
		{1, layerselect.Window{Sink: 1, Recent: 0, Last: 1}},
	} {
		p := newProblem(rand.New(rand.NewPCG(uint64(tc.n), 2)), tc.n, h, 2)
		require.Equal(t, 1.0, layerselect.LazyRatio(p.q, p.k, p.lse, p.n, tc.w, h), "%+v n %d", tc.w, tc.n)
		require.InDelta(t, 1.0, naiveRatio(p, tc.w, true), 1e-12)
	}
}

// TestLazyRatioNeedsCausality: leaving out k <= q gives a clearly different
// answer on these inputs, so TestLazyRatioAgainstNaive would catch that bug.
func TestLazyRatioNeedsCausality(t *testing.T) {
	h := layerselect.Heads{Heads: 2, KVHeads: 1, HeadDim: 8}
	w := layerselect.Window{Sink: 2, Recent: 8, Last: 8}
	p := newProblem(rand.New(rand.NewPCG(4, 4)), 40, h, 2)
	got := layerselect.LazyRatio(p.q, p.k, p.lse, p.n, w, h)
	require.InDelta(t, naiveRatio(p, w, true), got, ratioTol)
	require.Greater(t, math.Abs(naiveRatio(p, w, false)-got), 100*ratioTol)
}

func TestLazyRatioPanics(t *testing.T) {
	h := layerselect.Heads{Heads: 2, KVHeads: 1, HeadDim: 2}
	q, k, lse := make([]float32, 4*4), make([]float32, 4*2), make([]float32, 4*2)
	w := layerselect.Window{Sink: 1, Recent: 1, Last: 2}
	require.NotPanics(t, func() { layerselect.LazyRatio(q, k, lse, 4, w, h) })
	for name, f := range map[string]func(){
		"q size":   func() { layerselect.LazyRatio(q[:3], k, lse, 4, w, h) },
		"k size":   func() { layerselect.LazyRatio(q, k[:7], lse, 4, w, h) },
		"lse size": func() { layerselect.LazyRatio(q, k, lse[:7], 4, w, h) },
		"heads":    func() { layerselect.LazyRatio(q, k, lse, 4, w, layerselect.Heads{Heads: 3, KVHeads: 2, HeadDim: 2}) },
		"last 0":   func() { layerselect.LazyRatio(q, k, lse, 4, layerselect.Window{Sink: 1, Recent: 1}, h) },
		"sink < 0": func() { layerselect.LazyRatio(q, k, lse, 4, layerselect.Window{Sink: -1, Recent: 1, Last: 1}, h) },
		"n 0":      func() { layerselect.LazyRatio(nil, nil, nil, 0, w, h) },
	} {
		require.Panics(t, f, name)
	}
}

// FuzzLazyRatio fuzzes LazyRatio against its naive twin over sizes and windows.
func FuzzLazyRatio(f *testing.F) {
	f.Add(uint64(1), uint8(30), uint8(2), uint8(6), uint8(8), uint8(2), uint8(1))
	f.Add(uint64(2), uint8(9), uint8(4), uint8(4), uint8(40), uint8(1), uint8(0))
	f.Add(uint64(3), uint8(17), uint8(0), uint8(3), uint8(1), uint8(3), uint8(2))
	f.Fuzz(func(t *testing.T, seed uint64, n, sink, recent, last, kvHeads, groupLog uint8) {
		h := layerselect.Heads{KVHeads: 1 + int(kvHeads%3), HeadDim: 4}
		h.Heads = h.KVHeads << (groupLog % 3)
		w := layerselect.Window{Sink: int(sink % 16), Recent: int(recent % 16), Last: 1 + int(last%40)}
		p := newProblem(rand.New(rand.NewPCG(seed, 3)), 1+int(n%48), h, 2)
		got := layerselect.LazyRatio(p.q, p.k, p.lse, p.n, w, h)
		want := naiveRatio(p, w, true)
		if math.Abs(got-want) > ratioTol {
			t.Fatalf("n %d %+v %+v: got %v want %v", p.n, w, h, got, want)
		}
	})
}

func BenchmarkLazyRatio(b *testing.B) {
	// Qwen2.5-0.5B-like layer: 14 heads, 2 KV heads, 64 dims; 2048-token prompt,
	// sink 4, recent 1020, last 32.
	h := layerselect.Heads{Heads: 14, KVHeads: 2, HeadDim: 64}
	n := 2048
	rng := rand.New(rand.NewPCG(1, 1))
	q := make([]float32, n*h.Heads*h.HeadDim)
	k := make([]float32, n*h.KVHeads*h.HeadDim)
	lse := make([]float32, n*h.Heads)
	for i := range q {
		q[i] = rng.Float32()
	}
	for i := range k {
		k[i] = rng.Float32()
	}
	for i := range lse {
		lse[i] = 10
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = layerselect.LazyRatio(q, k, lse, n, layerselect.Window{Sink: 4, Recent: 1020, Last: 32}, h)
	}
}

// rowPrompt is a layerselect.Prompt over a problem's rows, each handed out as a copy; bad
// records requests for rows LazyRatioOf says it does not read.
type rowPrompt struct {
	p   problem
	w   layerselect.Window
	bad []string
}

func (r *rowPrompt) Query(t int) (q, lse []float32) {
	h := r.p.h
	if t < r.p.n-r.w.Last || t >= r.p.n {
		r.bad = append(r.bad, fmt.Sprintf("query %d", t))
	}
	qw := h.Heads * h.HeadDim
	return append([]float32(nil), r.p.q[t*qw:(t+1)*qw]...), append([]float32(nil), r.p.lse[t*h.Heads:(t+1)*h.Heads]...)
}

func (r *rowPrompt) Key(t int) []float32 {
	kw := r.p.h.KVHeads * r.p.h.HeadDim
	if t >= r.w.Sink && t < r.p.n-r.w.Recent || t >= r.p.n {
		r.bad = append(r.bad, fmt.Sprintf("key %d", t))
	}
	return append([]float32(nil), r.p.k[t*kw:(t+1)*kw]...)
}
