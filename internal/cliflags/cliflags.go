// Package cliflags holds the command-line pieces the example commands share: the
// attention-mode flags (-mode, -keep, -sink, -window, -last, -lazy, -plan, -kv) turned into
// model.SessionOptions, and a byte-count parser for flags such as -kv-budget 4GiB.
package cliflags

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/lighttransfer/lighttransfer-go/kvcache"
	"github.com/lighttransfer/lighttransfer-go/layerselect"
	"github.com/lighttransfer/lighttransfer-go/model"
)

// Attention is a session's attention mode as flags or a request spell it. The zero value
// means the library's defaults: fixed mode when the checkpoint declares lazy layers, else
// full attention, float32 KV.
type Attention struct {
	Mode   string  // "", "full", "test" or "fixed"
	Keep   float64 // test mode: fraction of layers kept full (used when KeepSet)
	Sink   int     // streaming layers: attention-sink tokens (used when SinkSet)
	Window int     // streaming layers: recent window (used when WindowSet)
	Last   int     // test mode: prompt queries the lazy ratio averages over (used when LastSet)
	Lazy   []int   // fixed mode: the lazy layers
	Plan   string  // fixed mode: a plan file written by selectlayers -calibrate
	KV     string  // KV element type: "" (f32), f32, bf16, q8 or q4

	KeepSet, SinkSet, WindowSet, LastSet bool

	lazy string // the -lazy flag's text until Visit parses it
}

// Register adds -mode, -keep, -sink, -window, -last, -lazy, -plan and -kv to fs, storing into
// a. Call a.Visit(fs) after fs.Parse.
func (a *Attention) Register(fs *flag.FlagSet) {
	fs.StringVar(&a.Mode, "mode", "", "attention mode: full, test or fixed (default: fixed when the checkpoint declares lazy layers, else full)")
	fs.Float64Var(&a.Keep, "keep", model.DefaultKeep, "test mode: fraction of layers kept full")
	fs.IntVar(&a.Sink, "sink", model.DefaultSink, "streaming layers: attention-sink tokens")
	fs.IntVar(&a.Window, "window", model.DefaultWindow, "streaming layers: recent window")
	fs.IntVar(&a.Last, "last", model.DefaultLast, "test mode: prompt queries the lazy ratio averages over")
	fs.StringVar(&a.lazy, "lazy", "", "fixed mode: comma-separated lazy layers")
	fs.StringVar(&a.Plan, "plan", "", "fixed mode: plan `file` written by selectlayers -calibrate")
	fs.StringVar(&a.KV, "kv", "f32", "KV cache element `type`: f32, bf16, q8 or q4")
}

// Visit records which of the registered flags fs.Parse saw and parses -lazy.
func (a *Attention) Visit(fs *flag.FlagSet) error {
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "keep":
			a.KeepSet = true
		case "sink":
			a.SinkSet = true
		case "window":
			a.WindowSet = true
		case "last":
			a.LastSet = true
		}
	})
	lazy, err := ParseInts(a.lazy)
	if err != nil {
		return fmt.Errorf("-lazy: %w", err)
	}
	a.Lazy = lazy
	return nil
}

// KVType returns the KV element type a.KV names (f32 when empty).
func (a Attention) KVType() (kvcache.Type, error) {
	if a.KV == "" {
		return kvcache.F32, nil
	}
	return kvcache.ParseType(a.KV)
}

// SessionOptions returns the session options a describes, the KV type included. Unset sink,
// window, keep and last keep the checkpoint's or the library's defaults; out-of-range values
// are left for model.NewSession to reject with model.ErrOption.
func (a Attention) SessionOptions() ([]model.SessionOption, error) {
	kv, err := a.KVType()
	if err != nil {
		return nil, fmt.Errorf("kv: %w", err)
	}
	opts, err := a.modeOptions()
	if err != nil {
		return nil, err
	}
	return append(opts, model.WithKV(kv)), nil
}

func (a Attention) modeOptions() ([]model.SessionOption, error) {
	var stream []model.StreamOption
	if a.SinkSet {
		stream = append(stream, model.WithSink(a.Sink))
	}
	if a.WindowSet {
		stream = append(stream, model.WithWindow(a.Window))
	}
	switch {
	case a.Plan != "":
		if a.Mode != "" && a.Mode != "fixed" {
			return nil, fmt.Errorf("plan needs mode fixed, not %q", a.Mode)
		}
		f, err := os.Open(a.Plan)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		p, err := layerselect.ReadPlan(f)
		if err != nil {
			return nil, err
		}
		return []model.SessionOption{model.WithPlan(p)}, nil
	case a.Mode == "" && len(a.Lazy) == 0:
		return nil, nil
	case a.Mode == "full":
		return []model.SessionOption{model.FullAttention()}, nil
	case a.Mode == "test":
		keep, last := model.DefaultKeep, model.DefaultLast
		if a.KeepSet {
			keep = a.Keep
		}
		if a.LastSet {
			last = a.Last
		}
		stream = append(stream, model.WithKeep(keep), model.WithLast(last))
		return []model.SessionOption{model.TestMode(stream...)}, nil
	case a.Mode == "fixed" || a.Mode == "":
		if len(a.Lazy) == 0 {
			return nil, errors.New("mode fixed needs lazy layers or a plan")
		}
		return []model.SessionOption{model.FixedMode(a.Lazy, stream...)}, nil
	}
	return nil, fmt.Errorf("mode %q: want full, test or fixed", a.Mode)
}

// ParseInts reads comma-separated integers; empty fields are skipped.
func ParseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		v, err := strconv.Atoi(f)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// ParseBytes reads a positive byte count such as 4096, 512MiB, 1.5GiB or 4GiB (units KiB, MiB,
// GiB, TiB and B; KB, MB, GB are read as their binary twins).
func ParseBytes(s string) (int64, error) {
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
		{"TB", 1 << 40}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSuffix(num, u.suffix), u.m
			break
		}
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || !(v > 0) || v*float64(mult) >= math.MaxInt64 || v*float64(mult) < 1 {
		return 0, fmt.Errorf("%q is not a positive byte count", s)
	}
	return int64(v * float64(mult)), nil
}
