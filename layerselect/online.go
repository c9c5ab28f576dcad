package layerselect

import (
	"container/heap"
	"errors"
	"fmt"
	"math"
	"slices"
)

// ErrInvalid is wrapped by every error this package returns (bad keep
// fraction, layer lists, plans, calibration input); check with errors.Is.
var ErrInvalid = errors.New("layerselect: invalid input")

// selectError carries a complete message ("layerselect: ...") and unwraps to
// ErrInvalid (and to a cause, if any).
type selectError struct {
	msg   string
	cause error
}

func (e *selectError) Error() string { return e.msg }
func (e *selectError) Unwrap() []error {
	if e.cause != nil {
		return []error{ErrInvalid, e.cause}
	}
	return []error{ErrInvalid}
}

func errorf(format string, args ...any) error {
	return &selectError{msg: "layerselect: " + fmt.Sprintf(format, args...)}
}

// KeepCount returns K = ceil(keep·layers − 1e-9), the number of layers kept
// full, clamped to [0, layers]. It does not validate keep (see [NewOnline]).
func KeepCount(layers int, keep float64) int {
	if layers <= 0 {
		return 0
	}
	k := math.Ceil(keep*float64(layers) - 1e-9)
	switch {
	case !(k >= 0): // also NaN
		return 0
	case k > float64(layers):
		return layers
	}
	return int(k)
}

func checkKeep(keep float64) error {
	if !(keep > 0 && keep <= 1) {
		return errorf("keep %v: must be in (0,1]", keep)
	}
	return nil
}

// entry is one observed layer.
type entry struct {
	ratio float64
	layer int
}

// key maps NaN to -Inf: a NaN ratio is treated as the least lazy value.
func key(r float64) float64 {
	if math.IsNaN(r) {
		return math.Inf(-1)
	}
	return r
}

// lazier reports whether a is popped before b: higher ratio first; ties (and
// NaN, see key) by lower layer index first. It is a strict total order on
// distinct layers.
func lazier(a, b entry) bool {
	ka, kb := key(a.ratio), key(b.ratio)
	if ka != kb {
		return ka > kb
	}
	return a.layer < b.layer
}

type maxHeap []entry

func (h maxHeap) Len() int           { return len(h) }
func (h maxHeap) Less(i, j int) bool { return lazier(h[i], h[j]) }
func (h maxHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *maxHeap) Push(x any)        { *h = append(*h, x.(entry)) }
func (h *maxHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// Online is the test-mode (online) lazy-layer selector of docs/method.md §3: as each
// layer finishes its prefill the caller observes its lazy ratio; whenever more
// than K = KeepCount(layers, keep) observed layers are still full, the laziest
// (highest ratio; ties: lower layer index first; NaN counts as least lazy) is
// made lazy at once, so at most K+1 observed layers are full at any moment.
// After every layer has been observed, Lazy equals [TopLazy] of the ratios.
//
// Online does not know the prompt length: when n <= sink+window every ratio is
// 1 and no layer should be made lazy, so the caller should not use Online then.
// An Online is for one sequence and not safe for concurrent use.
type Online struct {
	layers, keep int
	seen         []bool
	heap         maxHeap
	lazy         []int
}

// NewOnline returns a selector for a model of layers layers that keeps
// KeepCount(layers, keep) of them full. keep must be in (0,1] and layers >= 1;
// otherwise the error (wrapping [ErrInvalid]) names the value.
func NewOnline(layers int, keep float64) (*Online, error) {
	if layers < 1 {
		return nil, errorf("layers %d: need at least 1", layers)
	}
	if err := checkKeep(keep); err != nil {
		return nil, err
	}
	k := KeepCount(layers, keep)
	return &Online{layers: layers, keep: k, seen: make([]bool, layers), heap: make(maxHeap, 0, k+1)}, nil
}

// Observe records layer's lazy ratio and returns the layers to make lazy (and
// truncate) now, in the order they were chosen; usually none or one, nil when
// none. It panics if layer is out of range or was already observed (a
// programmer error in the caller's layer loop).
func (o *Online) Observe(layer int, ratio float64) []int {
	if layer < 0 || layer >= o.layers {
		panic(fmt.Sprintf("layerselect: Observe: layer %d out of range [0,%d)", layer, o.layers))
	}
	if o.seen[layer] {
		panic(fmt.Sprintf("layerselect: Observe: layer %d observed twice", layer))
	}
	o.seen[layer] = true
	heap.Push(&o.heap, entry{ratio: ratio, layer: layer})
	var out []int
	for len(o.heap) > o.keep {
		e := heap.Pop(&o.heap).(entry)
		o.lazy = append(o.lazy, e.layer)
		out = append(out, e.layer)
	}
	return out
}

// Lazy returns the layers made lazy so far, sorted ascending (a new slice).
func (o *Online) Lazy() []int {
	out := slices.Clone(o.lazy)
	slices.Sort(out)
	if out == nil {
		out = []int{}
	}
	return out
}

// TopLazy is the offline equivalent of [Online]: the len(ratios) − K layers
// with the highest ratios (ties: lower layer index first; NaN least lazy),
// where K = KeepCount(len(ratios), keep), sorted ascending. Errors (wrapping
// [ErrInvalid]): keep outside (0,1], no ratios.
func TopLazy(ratios []float64, keep float64) ([]int, error) {
	if err := checkKeep(keep); err != nil {
		return nil, err
	}
	if len(ratios) == 0 {
		return nil, errorf("no layer ratios")
	}
	return topLazy(ratios, KeepCount(len(ratios), keep)), nil
}

func topLazy(ratios []float64, keep int) []int {
	idx := make([]int, len(ratios))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		switch {
		case lazier(entry{ratios[a], a}, entry{ratios[b], b}):
			return -1
		case a == b:
			return 0
		}
		return 1
	})
	out := idx[:len(ratios)-keep]
	slices.Sort(out)
	return out
}

// ValidateLayers checks a lazy-layer list for a model of layers layers: every
// index in [0, layers) and none repeated. The error (wrapping [ErrInvalid])
// names the offending index.
func ValidateLayers(lazy []int, layers int) error {
	seen := make(map[int]bool, len(lazy))
	for _, l := range lazy {
		if l < 0 || l >= layers {
			return errorf("lazy layer %d: out of range [0,%d)", l, layers)
		}
		if seen[l] {
			return errorf("lazy layer %d: listed twice", l)
		}
		seen[l] = true
	}
	return nil
}
