package layerselect

import (
	"fmt"
	"math"
)

// Window selects the keys and queries of the lazy ratio (docs/method.md §2, Eq. 1):
// Sink is w_sink (keys at positions < Sink), Recent is w_recent (keys at
// positions >= n-Recent), Last is w_last (the last Last prompt queries). There
// are no implicit defaults; the paper's are Sink = the streaming sink, Recent =
// the streaming window, Last = 32.
type Window struct {
	Sink, Recent, Last int
}

// Heads is the attention geometry of a layer: Heads query heads, KVHeads key
// heads (GQA: query head h uses KV head h/(Heads/KVHeads)), HeadDim floats per
// head. Scale is the softmax scale; 0 means 1/sqrt(HeadDim).
type Heads struct {
	Heads, KVHeads, HeadDim int
	Scale                   float32
}

func (h Heads) check() {
	if h.Heads <= 0 || h.KVHeads <= 0 || h.HeadDim <= 0 || h.Heads%h.KVHeads != 0 {
		panic(fmt.Sprintf("layerselect: bad heads %d, KV heads %d, head dim %d (need all > 0 and Heads a multiple of KVHeads)",
			h.Heads, h.KVHeads, h.HeadDim))
	}
}

// LazyRatio returns the lazy ratio of one layer for a prompt of n tokens at
// positions 0..n-1 (docs/method.md §2, Eq. 1): the mean, over query heads and over the
// last w.Last queries (all n if w.Last >= n), of the attention mass a query puts
// on S = {key < w.Sink} ∪ {key >= n-w.Recent} (a set, no double counting),
// restricted causally to keys <= the query. It never builds the n×n matrix: for
// query t and head hd, mass = exp(logsumexp_{key∈S, key<=t}(scale·q·k) -
// lse[t*Heads+hd]), with the dot products and the log-sum-exp in float64.
//
// q is [n][Heads*HeadDim] and k [n][KVHeads*HeadDim], both after RoPE; lse is
// [n][Heads], the natural-log log-sum-exp of the scaled scores over each
// query's visible keys from the layer's own (full causal) attention. It returns
// exactly 1 when n <= w.Sink+w.Recent (every query sees only S). A query/head
// with no key in S contributes 0.
//
// It panics on bad sizes, bad heads, n < 1, w.Last < 1 or negative
// w.Sink/w.Recent (programmer errors).
func LazyRatio(q, k, lse []float32, n int, w Window, h Heads) float64 {
	h.check()
	if n < 1 || w.Last < 1 || w.Sink < 0 || w.Recent < 0 {
		panic(fmt.Sprintf("layerselect: LazyRatio: n %d, window %+v: need n >= 1, Last >= 1, Sink and Recent >= 0", n, w))
	}
	qw, kw := h.Heads*h.HeadDim, h.KVHeads*h.HeadDim
	if len(q) != n*qw || len(k) != n*kw || len(lse) != n*h.Heads {
		panic(fmt.Sprintf("layerselect: LazyRatio: n %d: q %d (want %d), k %d (want %d), lse %d (want %d) floats",
			n, len(q), n*qw, len(k), n*kw, len(lse), n*h.Heads))
	}
	return LazyRatioOf(&rows{q: q, k: k, lse: lse, qw: qw, kw: kw, heads: h.Heads}, n, w, h)
}

// Prompt supplies the rows of an n-token prompt that a lazy ratio reads, wherever they are
// stored (a prefill run in several steps keeps them in its KV cache and in copies of its last
// queries): Query(t) returns query t's post-RoPE q ([Heads·HeadDim]) and its lse ([Heads]),
// asked only for the last w.Last queries; Key(t) returns key t's post-RoPE k
// ([KVHeads·HeadDim]), asked only for keys below w.Sink or within the last w.Recent.
type Prompt interface {
	Query(t int) (q, lse []float32)
	Key(t int) []float32
}

// rows is a Prompt over contiguous q, k and lse.
type rows struct {
	q, k, lse     []float32
	qw, kw, heads int
}

func (r *rows) Query(t int) (q, lse []float32) {
	return r.q[t*r.qw : (t+1)*r.qw], r.lse[t*r.heads : (t+1)*r.heads]
}

func (r *rows) Key(t int) []float32 { return r.k[t*r.kw : (t+1)*r.kw] }

// LazyRatioOf is LazyRatio over a Prompt: the same sums in the same order, so the same
// bits as LazyRatio on the same rows. It panics as LazyRatio does (sizes aside) and on rows
// shorter than the heads need.
func LazyRatioOf(p Prompt, n int, w Window, h Heads) float64 {
	h.check()
	if n < 1 || w.Last < 1 || w.Sink < 0 || w.Recent < 0 {
		panic(fmt.Sprintf("layerselect: LazyRatio: n %d, window %+v: need n >= 1, Last >= 1, Sink and Recent >= 0", n, w))
	}
	if n <= w.Sink+w.Recent {
		return 1
	}
	scale := float64(h.Scale)
	if scale == 0 {
		scale = 1 / math.Sqrt(float64(h.HeadDim))
	}
	group := h.Heads / h.KVHeads
	sinkEnd := min(w.Sink, n)               // keys [0, sinkEnd)
	recentStart := max(sinkEnd, n-w.Recent) // keys [recentStart, n), disjoint from the sink keys
	first := max(0, n-w.Last)

	var total float64
	for t := first; t < n; t++ {
		qt, lt := p.Query(t)
		for hd := range h.Heads {
			qv := qt[hd*h.HeadDim : (hd+1)*h.HeadDim]
			ko := (hd / group) * h.HeadDim
			// Online log-sum-exp over the sink keys then the recent keys (both
			// causally cut at t): running max m, sum s of exp(x-m).
			m, s := math.Inf(-1), 0.0
			lo, hi := 0, min(sinkEnd-1, t)
			for pass := 0; pass < 2; pass++ {
				for key := lo; key <= hi; key++ {
					x := dot64(qv, p.Key(key)[ko:ko+h.HeadDim]) * scale
					if x > m {
						s = s*math.Exp(m-x) + 1
						m = x
					} else {
						s += math.Exp(x - m)
					}
				}
				lo, hi = recentStart, t
			}
			if s > 0 {
				total += math.Exp(m + math.Log(s) - float64(lt[hd]))
			}
		}
	}
	return total / float64((n-first)*h.Heads)
}

// dot64 returns a·b accumulated in float64 (len(b) >= len(a)).
func dot64(a, b []float32) float64 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += float64(a[i]) * float64(b[i])
		s1 += float64(a[i+1]) * float64(b[i+1])
		s2 += float64(a[i+2]) * float64(b[i+2])
		s3 += float64(a[i+3]) * float64(b[i+3])
	}
	for ; i < len(a); i++ {
		s0 += float64(a[i]) * float64(b[i])
	}
	return (s0 + s1) + (s2 + s3)
}
