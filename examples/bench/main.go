// Command bench measures prefill and decode speed and KV memory of the library on
// random-weight models of real shapes, for full attention and for a hybrid plan (half the
// layers streaming, sink 4, window 1020).
//
//	go run ./examples/bench -shape qwen2.5-0.5b -dtype f32 -depth 0,4096,16384 -reps 3
//	go run ./examples/bench -shape qwen2.5-0.5b -dtype bf16 -depth 16384 -kv-budget 4GiB -json
//
// For each depth it prefills one sequence of that many tokens with full attention and a
// float32 KV cache (the context really holds them); each mode (hybrid: every other layer made
// streaming, as Test mode does after its prefill) and each -kv type (f32, bf16, q8, q4, comma-
// separated; the cache re-encoded) measures copies of it. From those copies it times a 512-token prefill chunk appended at that depth and 128
// decode steps. With -kv-budget it fills the budget with as many copies as fit and times
// decode steps over all of them together (Batch.Step), reporting the aggregate tok/s.
// Results are medians over -reps; byte counts come from the library's own accounting.
// -fill synthetic builds the depth with Session.FillSynthetic instead of a prefill: the same
// cache in size, layout and types (decode speed does not depend on what it holds) without the
// quadratic cost of filling 16K tokens; prefill rows at depth are then over random keys too.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lighttransfer/lighttransfer-go/internal/cliflags"
	"github.com/lighttransfer/lighttransfer-go/kvcache"
	"github.com/lighttransfer/lighttransfer-go/loader"
	"github.com/lighttransfer/lighttransfer-go/model"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// Measurement is one line of -json output.
type Measurement struct {
	Shape      string  `json:"shape"`
	DType      string  `json:"dtype"`
	KVType     string  `json:"kv_type"` // the -kv value: f32, bf16, q8
	Mode       string  `json:"mode"`
	Depth      int     `json:"depth"`
	Fill       string  `json:"fill"` // the -fill value: real or synthetic
	Batch      int     `json:"batch"`
	PrefillTPS float64 `json:"prefill_tps"`
	DecodeTPS  float64 `json:"decode_tps"`
	KVBytes    int64   `json:"kv_bytes"`
	Weight     int64   `json:"weight_bytes"`
	ReadBytes  int64   `json:"read_bytes_per_step"`
	RSS        int64   `json:"rss_bytes"`
}

// shapes are the model shapes bench can build.
var shapes = map[string]loader.Config{
	"qwen2.5-0.5b": {ModelType: "qwen2", HiddenSize: 896, IntermediateSize: 4864, NumLayers: 24, NumHeads: 14,
		NumKVHeads: 2, HeadDim: 64, VocabSize: 151936, MaxPositions: 32768, RMSNormEps: 1e-6, RopeTheta: 1e6,
		TieEmbeddings: true, AttentionBias: true, HiddenAct: "silu"},
	"qwen2.5-1.5b": {ModelType: "qwen2", HiddenSize: 1536, IntermediateSize: 8960, NumLayers: 28, NumHeads: 12,
		NumKVHeads: 2, HeadDim: 128, VocabSize: 151936, MaxPositions: 32768, RMSNormEps: 1e-6, RopeTheta: 1e6,
		TieEmbeddings: true, AttentionBias: true, HiddenAct: "silu"},
	// tiny is the stories260K shape, with room for long contexts.
	"tiny": {ModelType: "llama", HiddenSize: 64, IntermediateSize: 172, NumLayers: 5, NumHeads: 8,
		NumKVHeads: 4, HeadDim: 8, VocabSize: 512, MaxPositions: 32768, RMSNormEps: 1e-5, RopeTheta: 10000,
		TieEmbeddings: true, HiddenAct: "silu"},
}

type config struct {
	shape, dtype   string
	depths         []int
	reps, threads  int
	prefill, steps int
	budget         int64
	modes          []string
	asJSON         bool
	seed           uint64
	kvs            []kvcache.Type
	fill           string
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c config
	fs.StringVar(&c.shape, "shape", "qwen2.5-0.5b", "model shape: "+strings.Join(shapeNames(), ", "))
	fs.StringVar(&c.dtype, "dtype", "f32", "weight format: f32, bf16, q8 or q4")
	depth := fs.String("depth", "0", "comma-separated context depths")
	fs.IntVar(&c.reps, "reps", 3, "repetitions; medians are reported")
	fs.IntVar(&c.threads, "threads", 0, "threads (0: GOMAXPROCS)")
	fs.IntVar(&c.prefill, "prefill", 512, "tokens of the timed prefill chunk")
	fs.IntVar(&c.steps, "decode", 128, "timed decode steps")
	budget := fs.String("kv-budget", "", "KV memory budget (bytes or KiB/MiB/GiB): decode as many sequences as fit, together")
	modes := fs.String("modes", "full,hybrid", "modes to measure: full, hybrid")
	kvNames := fs.String("kv", "f32", "comma-separated KV cache element `types`: f32, bf16, q8, q4")
	fs.StringVar(&c.fill, "fill", "real", "how the depth is built: real (a prefill) or synthetic (random keys and values, same cache)")
	fs.BoolVar(&c.asJSON, "json", false, "print one JSON object per measurement")
	fs.Uint64Var(&c.seed, "seed", 1, "seed of the random weights and tokens")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the measurements to `file`")
	var sc serveConfig
	fs.IntVar(&sc.requests, "serve", 0, "serving benchmark: submit this many requests to a serve.Engine per mode (0: off)")
	fs.IntVar(&sc.prompt, "serve-prompt", 4096, "-serve: prompt tokens per request")
	fs.IntVar(&sc.maxTokens, "serve-max-tokens", 128, "-serve: tokens generated per request")
	arrival := fs.String("serve-arrival", "together", "-serve: together, or poisson:RATE (requests per second)")
	fs.Float64Var(&sc.budgetX, "serve-budget", 4, "-serve: KV budget in full-attention estimates of one request (prompt + max tokens)")
	fs.IntVar(&sc.stepTok, "serve-step-tokens", 0, "-serve: the engine's per-step token budget (0: its default)")
	fs.IntVar(&sc.window, "serve-window", 0, "-serve: the hybrid mode's streaming window (0: the default, 1020)")
	fs.BoolVar(&sc.interleave, "serve-interleave", false, "-serve: run the modes at once, taking turns step by step, each timed by its own stepping time")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if _, ok := shapes[c.shape]; !ok {
		return fmt.Errorf("-shape %q: want one of %s", c.shape, strings.Join(shapeNames(), ", "))
	}
	if !slices.Contains([]string{"f32", "bf16", "q8", "q4"}, c.dtype) {
		return fmt.Errorf("-dtype %q: want f32, bf16, q8 or q4", c.dtype)
	}
	var err error
	for _, name := range strings.Split(*kvNames, ",") {
		kv, err := kvcache.ParseType(strings.TrimSpace(name))
		if err != nil {
			return fmt.Errorf("-kv: %w", err)
		}
		c.kvs = append(c.kvs, kv)
	}
	if c.depths, err = parseInts(*depth); err != nil {
		return fmt.Errorf("-depth: %w", err)
	}
	if *budget != "" {
		if c.budget, err = cliflags.ParseBytes(*budget); err != nil {
			return fmt.Errorf("-kv-budget: %w", err)
		}
	}
	if c.fill != "real" && c.fill != "synthetic" {
		return fmt.Errorf("-fill %q: want real or synthetic", c.fill)
	}
	c.modes = strings.Split(*modes, ",")
	for _, m := range c.modes {
		if m != "full" && m != "hybrid" {
			return fmt.Errorf("-modes: unknown mode %q", m)
		}
	}
	if c.reps <= 0 || c.prefill <= 0 || c.steps <= 0 {
		return errors.New("-reps, -prefill and -decode must be positive")
	}
	if sc.rate, err = parseArrival(*arrival); err != nil {
		return fmt.Errorf("-serve-arrival: %w", err)
	}
	if sc.requests < 0 || sc.prompt <= 0 || sc.maxTokens <= 0 || sc.budgetX <= 0 {
		return errors.New("-serve must be >= 0, -serve-prompt, -serve-max-tokens and -serve-budget positive")
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if sc.requests > 0 {
		return serveMain(ctx, c, sc, stdout, stderr)
	}
	return bench(ctx, c, stdout, stderr)
}

// serveMain builds the model and runs the -serve benchmark.
func serveMain(ctx context.Context, c config, sc serveConfig, stdout, stderr io.Writer) error {
	m, err := buildModel(ctx, c, stderr)
	if err != nil {
		return err
	}
	defer m.Close()
	return serveBench(ctx, c, sc, m, stdout, stderr)
}

// buildModel builds the random-weight model of c's shape and weight format.
func buildModel(ctx context.Context, c config, stderr io.Writer) (*model.Model, error) {
	format, err := model.ParseWeightFormat(c.dtype)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	m, err := model.Random(ctx, shapes[c.shape], c.seed, model.WithWeightFormat(format), model.WithThreads(c.threads))
	if err != nil {
		return nil, err
	}
	// Building random quantized weights leaves the float32 originals (2 GB for the 0.5B
	// shape) as garbage; collect it now so that no timed run pays for it.
	runtime.GC()
	debug.FreeOSMemory()
	fmt.Fprintf(stderr, "bench: %s %s weights %d bytes built in %v\n", c.shape, c.dtype, m.WeightBytes(), time.Since(t0).Round(time.Millisecond))
	return m, nil
}

func shapeNames() []string {
	var out []string
	for k := range shapes {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func bench(ctx context.Context, c config, stdout, stderr io.Writer) error {
	cfg := shapes[c.shape]
	m, err := buildModel(ctx, c, stderr)
	if err != nil {
		return err
	}
	defer m.Close()
	if !c.asJSON {
		fmt.Fprintf(stdout, "%-13s %-5s %-6s %6s %5s %11s %10s %14s %14s %10s %s\n",
			"shape", "dtype", "mode", "depth", "batch", "prefill t/s", "decode t/s", "kv bytes", "read B/step", "rss MiB", "kv")
	}
	rng := rand.New(rand.NewPCG(c.seed, 2))
	tokens := func(n int) []int32 {
		t := make([]int32, n)
		for i := range t {
			t[i] = int32(rng.IntN(cfg.VocabSize))
		}
		return t
	}
	for _, depth := range c.depths {
		// One fill per depth, full attention in float32; every mode and KV type measures copies.
		fill, err := m.NewSession(model.FullAttention(), model.WithMaxContext(min(cfg.MaxPositions, depth+c.prefill+c.steps+1)))
		if err != nil {
			return err
		}
		if depth > 0 {
			t := time.Now()
			if c.fill == "synthetic" {
				err = fill.FillSynthetic(depth, c.seed)
			} else {
				_, err = fill.Next(ctx, tokens(depth))
			}
			if err != nil {
				return fmt.Errorf("filling depth %d: %w", depth, err)
			}
			fmt.Fprintf(stderr, "bench: depth %d filled in %v (%s)\n", depth, time.Since(t).Round(time.Millisecond), c.fill)
		}
		for _, mode := range c.modes {
			for _, kv := range c.kvs {
				if err := ctx.Err(); err != nil {
					return err
				}
				base, err := modeCopy(fill, mode, kv)
				if err != nil {
					return err
				}
				meas := Measurement{Shape: c.shape, DType: c.dtype, KVType: kv.String(), Mode: mode, Depth: depth, Fill: c.fill, Batch: 1, Weight: m.WeightBytes()}
				var pre, dec []float64
				for r := 0; r < c.reps; r++ {
					p, err := base.Clone()
					if err != nil {
						return err
					}
					t := time.Now()
					if _, err := p.Next(ctx, tokens(c.prefill)); err != nil {
						return err
					}
					pre = append(pre, float64(c.prefill)/time.Since(t).Seconds())
					p.Close()

					d, err := base.Clone()
					if err != nil {
						return err
					}
					steps := tokens(c.steps)
					meas.ReadBytes = m.StepReadBytes(d)
					t = time.Now()
					for i := range steps {
						if _, err := d.Next(ctx, steps[i:i+1]); err != nil {
							return err
						}
					}
					dec = append(dec, float64(c.steps)/time.Since(t).Seconds())
					meas.KVBytes = d.Usage().Bytes
					d.Close()
				}
				meas.PrefillTPS, meas.DecodeTPS = median(pre), median(dec)
				meas.RSS = peakRSS()
				report(c, meas, stdout)

				if c.budget > 0 {
					if err := batched(ctx, c, m, base, meas, kv, tokens, stdout, stderr); err != nil {
						return err
					}
				}
				base.Close()
			}
		}
		fill.Close()
	}
	return nil
}

// batched fills the KV budget with copies of base (each grows by c.steps tokens while
// decoding) and times decode steps over all of them at once.
func batched(ctx context.Context, c config, m *model.Model, base *model.Session, meas Measurement, kv kvcache.Type,
	tokens func(int) []int32, stdout, stderr io.Writer) error {
	cfg := m.Config()
	shape := kvcache.Shape{KVHeads: cfg.NumKVHeads, HeadDim: cfg.HeadDim}
	policies := make([]kvcache.Policy, cfg.NumLayers)
	for _, l := range base.Lazy() {
		policies[l] = kvcache.Streaming(base.Sink(), base.Window())
	}
	per := kvcache.Estimate(shape, policies, base.Pos()+c.steps, kvcache.WithType(kv, kv))
	n := int(c.budget / per)
	if n == 0 {
		fmt.Fprintf(stderr, "bench: %s: one sequence needs %d bytes, more than the budget %d\n", meas.Mode, per, c.budget)
		return nil
	}
	b := m.NewBatch()
	var dec []float64
	var kvBytes int64
	for r := 0; r < c.reps; r++ {
		// Fresh copies of the depth state every rep, so each rep decodes from depth.
		run := make([]*model.Session, n)
		for i := range run {
			var err error
			if run[i], err = base.Clone(); err != nil {
				return err
			}
		}
		meas.ReadBytes = m.StepReadBytes(run...)
		t := time.Now()
		for i := 0; i < c.steps; i++ {
			if _, err := b.Step(ctx, run, tokens(n)); err != nil {
				return err
			}
		}
		dec = append(dec, float64(n*c.steps)/time.Since(t).Seconds())
		kvBytes = 0
		for _, s := range run {
			kvBytes += s.Usage().Bytes
			s.Close()
		}
	}
	meas.Batch, meas.PrefillTPS, meas.DecodeTPS, meas.KVBytes = n, 0, median(dec), kvBytes
	meas.RSS = peakRSS()
	report(c, meas, stdout)
	return nil
}

// modeCopy returns a copy of the full-attention fill for mode with its KV cache in type kv:
// hybrid makes every other layer streaming (sink 4, window 1020, the session defaults), as
// Test mode does after its prefill, keeping the sink and the last window−1 tokens.
func modeCopy(fill *model.Session, mode string, kv kvcache.Type) (*model.Session, error) {
	s, err := fill.CloneKV(kv, kv)
	if err != nil {
		return nil, err
	}
	if mode == "hybrid" {
		var lazy []int
		for l := 1; l < len(fill.Usage().Layers); l += 2 {
			lazy = append(lazy, l)
		}
		if err := s.MakeStreaming(lazy...); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func report(c config, m Measurement, w io.Writer) {
	if c.asJSON {
		b, _ := json.Marshal(m)
		fmt.Fprintln(w, string(b))
		return
	}
	fmt.Fprintf(w, "%-13s %-5s %-6s %6d %5d %11.1f %10.2f %14d %14d %10.0f %s\n", m.Shape, m.DType, m.Mode, m.Depth,
		m.Batch, m.PrefillTPS, m.DecodeTPS, m.KVBytes, m.ReadBytes, float64(m.RSS)/(1<<20), m.KVType)
}

func median(x []float64) float64 {
	s := slices.Clone(x)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// peakRSS returns the process's peak resident set size in bytes (0 where unknown).
func peakRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Maxrss * 1024 // Linux reports KiB
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, err
		}
		if v < 0 {
			return nil, fmt.Errorf("negative value %d", v)
		}
		out = append(out, v)
	}
	return out, nil
}
