package layerselect

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
)

// Plan is a fixed lazy-layer plan, stored as a small JSON file:
//
//	{"num_hidden_layers": 5, "lazy_layers": [1, 3], "streaming_sink": 4,
//	 "streaming_window": 32, "source": "..."}
//
// Layers is the model's layer count, Lazy the lazy (streaming) layers in
// ascending order, Sink and Window the streaming policy of those layers (in
// tokens), Source free text saying where the plan came from.
type Plan struct {
	Layers int    `json:"num_hidden_layers"`
	Lazy   []int  `json:"lazy_layers"`
	Sink   int    `json:"streaming_sink"`
	Window int    `json:"streaming_window"`
	Source string `json:"source"`
}

// maxPlanBytes bounds what ReadPlan reads; real plans are a few hundred bytes.
const maxPlanBytes = 1 << 20

// ReadPlan parses and validates a plan (see [Plan.Validate] with the plan's own
// layer count). Unknown fields are accepted and ignored (room for extra
// metadata such as per-layer ratios); known fields must have the right JSON
// types; exactly one JSON object is allowed (trailing data is an error); at
// most 1 MiB is read. Lazy is returned sorted ascending. Errors wrap
// [ErrInvalid].
func ReadPlan(r io.Reader) (Plan, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxPlanBytes+1))
	if err != nil {
		return Plan{}, &selectError{msg: "layerselect: plan: read: " + err.Error(), cause: err}
	}
	if len(data) > maxPlanBytes {
		return Plan{}, errorf("plan: larger than %d bytes", maxPlanBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var p Plan
	if err := dec.Decode(&p); err != nil {
		return Plan{}, &selectError{msg: "layerselect: plan: " + err.Error(), cause: err}
	}
	if _, err := dec.Token(); err != io.EOF {
		return Plan{}, errorf("plan: trailing data after the JSON object")
	}
	if p.Lazy == nil {
		p.Lazy = []int{}
	}
	if err := p.Validate(p.Layers); err != nil {
		return Plan{}, err
	}
	slices.Sort(p.Lazy)
	return p, nil
}

// WriteTo writes p as indented JSON (two spaces, trailing newline; a nil Lazy
// is written as []). It returns the bytes written.
func (p Plan) WriteTo(w io.Writer) (int64, error) {
	if p.Lazy == nil {
		p.Lazy = []int{}
	}
	data, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return 0, fmt.Errorf("layerselect: plan: %w", err)
	}
	data = append(data, '\n')
	n, err := w.Write(data)
	return int64(n), err
}

// Validate checks p for a model with layers layers: p.Layers must equal layers
// (>= 1), every lazy layer in range and listed once, Sink >= 0 and Window > 0.
// Errors wrap [ErrInvalid], e.g. "layerselect: plan for 24 layers, model has 32".
func (p Plan) Validate(layers int) error {
	if p.Layers != layers {
		return errorf("plan for %d layers, model has %d", p.Layers, layers)
	}
	if p.Layers < 1 {
		return errorf("plan for %d layers: need at least 1", p.Layers)
	}
	if err := ValidateLayers(p.Lazy, p.Layers); err != nil {
		return &selectError{msg: "layerselect: plan: " + trimPrefix(err.Error()), cause: err}
	}
	if p.Sink < 0 {
		return errorf("plan: streaming_sink %d: must be >= 0", p.Sink)
	}
	if p.Window <= 0 {
		return errorf("plan: streaming_window %d: must be > 0", p.Window)
	}
	return nil
}

func trimPrefix(msg string) string {
	const pfx = "layerselect: "
	if len(msg) >= len(pfx) && msg[:len(pfx)] == pfx {
		return msg[len(pfx):]
	}
	return msg
}

// Calibrate turns per-prompt lazy ratios into a fixed plan (docs/method.md §5,
// calibration). runs[i][l] is layer l's ratio on prompt i. Each run's lazy set
// is TopLazy(run, keep), except that a run whose ratios are all exactly 1 (the
// prompt was too short to tell layers apart) contributes nothing. The plan's
// lazy layers are the L−K layers (K = KeepCount(L, keep)) chosen most often;
// ties: higher mean ratio over the contributing runs, then lower layer index.
// Sink and Window are copied into the plan, which is validated.
//
// Errors (wrapping [ErrInvalid]): no runs, an empty or ragged run (naming it),
// a NaN or infinite ratio (naming run and layer), keep outside (0,1], no
// contributing run, or an invalid sink/window.
func Calibrate(runs [][]float64, keep float64, sink, window int) (Plan, error) {
	if err := checkKeep(keep); err != nil {
		return Plan{}, err
	}
	if len(runs) == 0 {
		return Plan{}, errorf("calibrate: no runs")
	}
	L := len(runs[0])
	if L == 0 {
		return Plan{}, errorf("calibrate: run 0 has no layers")
	}
	count := make([]int, L)
	sum := make([]float64, L)
	used := 0
	for i, run := range runs {
		if len(run) != L {
			return Plan{}, errorf("calibrate: run %d has %d layers, run 0 has %d", i, len(run), L)
		}
		allOne := true
		for l, r := range run {
			if math.IsNaN(r) || math.IsInf(r, 0) {
				return Plan{}, errorf("calibrate: run %d layer %d: ratio %v", i, l, r)
			}
			allOne = allOne && r == 1
		}
		if allOne {
			continue
		}
		used++
		for l, r := range run {
			sum[l] += r
		}
		for _, l := range topLazy(run, KeepCount(L, keep)) {
			count[l]++
		}
	}
	if used == 0 {
		return Plan{}, errorf("calibrate: none of %d runs is informative (all ratios 1: prompts not longer than sink+window)", len(runs))
	}
	idx := make([]int, L)
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		switch {
		case count[a] != count[b]:
			return count[b] - count[a]
		case sum[a] != sum[b]: // same number of runs: comparing sums compares means
			if sum[a] > sum[b] {
				return -1
			}
			return 1
		}
		return a - b
	})
	lazy := idx[:L-KeepCount(L, keep)]
	slices.Sort(lazy)
	p := Plan{
		Layers: L,
		Lazy:   lazy,
		Sink:   sink,
		Window: window,
		Source: fmt.Sprintf("layerselect.Calibrate: %d of %d runs informative, keep %v (%d of %d layers full)",
			used, len(runs), keep, KeepCount(L, keep), L),
	}
	if err := p.Validate(L); err != nil {
		return Plan{}, err
	}
	return p, nil
}
