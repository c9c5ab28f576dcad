// Package refcheck compares the library's outputs with a checkpoint's reference (logits and
// lazy-layer selections computed by Hugging Face transformers), stored as reference.json or,
// compactly, as reference.safetensors. It backs examples/refcheck and
// the model package's tests, so both check exactly the same thing.
package refcheck

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/lighttransfer/lighttransfer-go/layerselect"
	"github.com/lighttransfer/lighttransfer-go/model"
)

// Reference is the content of a reference file (JSONFile or CompactFile). Absent keys are nil
// or zero.
type Reference struct {
	Tokens     []int32     `json:"tokens"`
	P          int         `json:"P"`
	Sink       int         `json:"sink"`
	Window     int         `json:"window"`
	WLast      int         `json:"w_last"`
	LogitsFull [][]float64 `json:"logits_full"`
	LazyRatio  []float64   `json:"lazy_ratio"`
	TestMode   *struct {
		Keep       int         `json:"keep"`
		LazyLayers []int       `json:"lazy_layers"`
		Logits     [][]float64 `json:"logits"`
	} `json:"test_mode"`
	TrainMode *struct {
		LazyLayers []int       `json:"lazy_layers"`
		Logits     [][]float64 `json:"logits"`
	} `json:"train_mode"`
}

// Status is the outcome of one check.
type Status string

// The outcomes of a check.
const (
	Pass    Status = "pass"
	Fail    Status = "FAIL"
	Skipped Status = "skipped"
	// Info marks a comparison reported for its error sizes only, not held to a tolerance
	// (weights stored in a lossy format such as bf16, q8 or q4).
	Info Status = "info"
)

// Result is one check of one reference key.
type Result struct {
	Dir       string
	Key       string
	Status    Status
	MaxAbsErr float64 // largest |ours − reference|
	Tol       float64 // the tolerance MaxAbsErr was held to
	ArgmaxOK  int     // logits rows whose argmax matches (logits keys only)
	Rows      int     // logits rows compared (logits keys only)
	Note      string
}

// String formats the result as one line: "<dir> <key> pass|FAIL max_abs_err=… tol=… argmax=k/n".
func (r Result) String() string {
	s := fmt.Sprintf("%s %s %s", r.Dir, r.Key, r.Status)
	if r.Status != Skipped {
		s += fmt.Sprintf(" max_abs_err=%.3g tol=%.3g", r.MaxAbsErr, r.Tol)
		if r.Rows > 0 {
			s += fmt.Sprintf(" argmax=%d/%d", r.ArgmaxOK, r.Rows)
		}
	}
	if r.Note != "" {
		s += " (" + r.Note + ")"
	}
	return s
}

// ErrNoReference reports a directory without config.json or a reference file, or a reference
// file whose content does not fit the format.
var ErrNoReference = errors.New("refcheck: not a reference checkpoint")

// LogitsTol is the relative tolerance of logits checks: max abs error ≤ LogitsTol·(1+max|ref|).
// A correct float32 implementation lands near 1e-6 of that scale; a wrong rms_norm_eps near 1e-5.
const LogitsTol = 1e-5

// RatioTol is the absolute tolerance of lazy-ratio checks.
const RatioTol = 1e-5

// ReadReference reads the reference of the checkpoint in dir: dir/reference.json (JSONFile)
// when present, else dir/reference.safetensors (CompactFile). dir must also hold config.json;
// a directory without either is ErrNoReference.
func ReadReference(dir string) (*Reference, error) {
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrNoReference, dir, err)
	}
	jsonPath := filepath.Join(dir, JSONFile)
	if _, err := os.Stat(jsonPath); err != nil {
		compact := filepath.Join(dir, CompactFile)
		if _, cerr := os.Stat(compact); cerr != nil {
			return nil, fmt.Errorf("%w: %s: neither %s nor %s: %w", ErrNoReference, dir, JSONFile, CompactFile, err)
		}
		r, _, err := ReadCompact(compact)
		return r, err
	}
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		return nil, fmt.Errorf("refcheck: %w", err)
	}
	var r Reference
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("refcheck: %s: %w", jsonPath, err)
	}
	if err := r.validate(); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadReference, jsonPath, err)
	}
	return &r, nil
}

// validate checks what every reference needs: tokens and a prompt length within them.
func (r *Reference) validate() error {
	if len(r.Tokens) == 0 || r.P <= 0 || r.P > len(r.Tokens) {
		return fmt.Errorf("tokens (%d) and P (%d) inconsistent", len(r.Tokens), r.P)
	}
	return nil
}

// Check loads the checkpoint in dir and runs every check its reference allows.
// The error reports a checkpoint that could not be loaded or run; failed comparisons are
// Results with Status Fail.
func Check(ctx context.Context, dir string, opts ...model.LoadOption) ([]Result, error) {
	ref, err := ReadReference(dir)
	if err != nil {
		return nil, err
	}
	m, err := model.Load(ctx, dir, append([]model.LoadOption{model.WithoutTokenizer()}, opts...)...)
	if err != nil {
		return nil, err
	}
	return CheckModel(ctx, m, dir, ref)
}

// CheckModel runs the checks of ref against an already loaded model; dir only labels results.
func CheckModel(ctx context.Context, m *model.Model, dir string, ref *Reference) ([]Result, error) {
	var out []Result
	V := m.Config().VocabSize
	L := m.Config().NumLayers

	if ref.LogitsFull != nil {
		s, err := m.NewSession(model.FullAttention())
		if err != nil {
			return nil, err
		}
		got, err := s.Forward(ctx, ref.Tokens)
		if err != nil {
			return nil, err
		}
		out = append(out, compareLogits(dir, "logits_full", got.Data().([]float32), V, ref.LogitsFull))
	}

	stream := []model.StreamOption{model.WithSink(ref.Sink), model.WithWindow(ref.Window)}
	if ref.LazyRatio != nil || ref.TestMode != nil {
		if ref.WLast <= 0 || ref.Window <= 0 {
			return nil, fmt.Errorf("refcheck: %s: test-mode keys need sink, window and w_last", dir)
		}
		s, err := m.NewSession(model.TestMode(append(stream, model.WithLast(ref.WLast), model.WithKeep(0.5))...))
		if err != nil {
			return nil, err
		}
		V := m.Config().VocabSize
		rows := make([]float32, 0, len(ref.Tokens)*V)
		pre, err := s.Forward(ctx, ref.Tokens[:ref.P])
		if err != nil {
			return nil, err
		}
		rows = append(rows, pre.Data().([]float32)...)
		for t := ref.P; t < len(ref.Tokens); t++ {
			row, err := s.Next(ctx, ref.Tokens[t:t+1])
			if err != nil {
				return nil, err
			}
			rows = append(rows, row...)
		}
		if ref.LazyRatio != nil {
			out = append(out, compareRatios(dir, s.Ratios(), ref.LazyRatio))
		}
		if tm := ref.TestMode; tm != nil {
			if tm.LazyLayers != nil {
				r := Result{Dir: dir, Key: "test_mode.lazy_layers", Status: Pass}
				got := s.Lazy()
				if k := layerselect.KeepCount(L, 0.5); tm.Keep != 0 && k != tm.Keep {
					r.Status, r.Note = Fail, fmt.Sprintf("keep count %d, reference %d", k, tm.Keep)
				} else if !slices.Equal(got, tm.LazyLayers) {
					r.Status, r.Note = Fail, fmt.Sprintf("lazy %v, reference %v", got, tm.LazyLayers)
				} else {
					r.Note = fmt.Sprintf("lazy %v", got)
				}
				out = append(out, r)
			}
			if tm.Logits != nil {
				out = append(out, compareLogits(dir, "test_mode.logits", rows, V, tm.Logits))
			}
		}
	}
	if tm := ref.TrainMode; tm != nil && tm.Logits != nil {
		s, err := m.NewSession(model.FixedMode(tm.LazyLayers, stream...))
		if err != nil {
			return nil, err
		}
		got, err := s.Forward(ctx, ref.Tokens)
		if err != nil {
			return nil, err
		}
		out = append(out, compareLogits(dir, "train_mode.logits", got.Data().([]float32), V, tm.Logits))
	}
	return out, nil
}

func compareLogits(dir, key string, got []float32, V int, want [][]float64) Result {
	r := Result{Dir: dir, Key: key, Rows: len(want)}
	if len(got) != len(want)*V {
		r.Status, r.Note = Fail, fmt.Sprintf("got %d values, want %d rows of %d", len(got), len(want), V)
		return r
	}
	var scale float64
	for t, row := range want {
		if len(row) != V {
			r.Status, r.Note = Fail, fmt.Sprintf("reference row %d has %d values, vocabulary is %d", t, len(row), V)
			return r
		}
		g := got[t*V : (t+1)*V]
		for i, w := range row {
			scale = max(scale, math.Abs(w))
			e := math.Abs(float64(g[i]) - w)
			if math.IsNaN(e) {
				e = math.Inf(1)
			}
			r.MaxAbsErr = max(r.MaxAbsErr, e)
		}
		if argmax32(g) == argmax64(row) {
			r.ArgmaxOK++
		}
	}
	r.Tol = LogitsTol * (1 + scale)
	r.Status = Pass
	if r.MaxAbsErr > r.Tol || r.ArgmaxOK != r.Rows {
		r.Status = Fail
	}
	return r
}

func compareRatios(dir string, got, want []float64) Result {
	r := Result{Dir: dir, Key: "lazy_ratio", Tol: RatioTol, Status: Pass}
	if len(got) != len(want) {
		r.Status, r.Note = Fail, fmt.Sprintf("got %d ratios, want %d", len(got), len(want))
		return r
	}
	for i := range want {
		e := math.Abs(got[i] - want[i])
		if math.IsNaN(e) {
			e = math.Inf(1)
		}
		r.MaxAbsErr = max(r.MaxAbsErr, e)
	}
	if r.MaxAbsErr > r.Tol {
		r.Status = Fail
	}
	return r
}

func argmax32(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

func argmax64(x []float64) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}
