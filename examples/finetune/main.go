// Command finetune is LightTransfer-Train: it fine-tunes a Hugging Face checkpoint so that a
// fixed set of its layers works under the streaming mask (attention sinks plus a recent
// window on every row), and writes a checkpoint that model.Load opens in fixed mode.
//
//	go run ./examples/finetune -model DIR -lazy 2,4 -sink 4 -window 16 -out DIR
//	go run ./examples/finetune -model DIR -data train.jsonl -loss ce -lazy 2,4 -out DIR
//	go run ./examples/finetune -eval FILE.json -model DIR -lazy 2,4 -sink 4 -window 16 -prompt-len 128 -json
//
// Without -data it trains on sequences the full-attention model samples itself (temperature
// 1, seeded; with -repeat, a share of them continue from a verbatim repeat of an earlier span,
// which teaches long-range copying), by distillation: the KL divergence from the full model's
// next-token distribution to the model under the training mask. One sample in twenty is held out; training
// stops early when its fixed-mask NLL stops improving (or after -max-time), and the best
// weights are written.
// Samples sharing a run of 32 tokens with the model's greedy continuation of BOS, or with
// any -exclude file, are dropped, so evaluation texts never become training data.
//
// -data is JSONL with one {"text"}, {"prompt","completion"} or {"messages"} object per line,
// packed to -seq-len tokens (a comma-separated list of files; -truncate cuts texts longer
// than -seq-len instead of refusing them). With -data and -samples N both, it trains on N
// sampled sequences and the data together, each data sequence -data-repeat times, holding out
// a share of the samples:
//
//	go run ./examples/finetune -model DIR -lazy 2,4 -sink 4 -window 16 -out DIR -samples 4800 -data testdata/train-stories260K/stories-train.jsonl -truncate -data-repeat 4
//
// Progress goes to stderr, one line per step.
//
// -eval FILE (a JSON array of token ids, BOS first) prints the mean NLL of tokens N.. given
// the ones before, with the streaming mask on every row of the lazy layers (fixed_nll) and
// with full attention (full_nll). -eval takes a comma-separated list too, a directory standing
// for its *.json files; with several texts, or with -base DIR (the checkpoint the model was
// trained from, scored the same way), it prints a line per text and their mean, with -base
// also the share of the base model's fixed-mode gap each recovers:
//
//	go run ./examples/finetune -eval testdata/train-stories260K/stories-dev -model ft -base testdata/stories260K -lazy 2,4 -sink 4 -window 16 -prompt-len 128
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/lighttransfer/lighttransfer-go/model"
	"github.com/lighttransfer/lighttransfer-go/train"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "finetune:", err)
		os.Exit(1)
	}
}

type flags struct {
	dir, out, lazy, data, exclude, evalFile, resume, lossName string
	base                                                      string
	params                                                    string
	watch                                                     string
	maxTime                                                   time.Duration
	sink, window, seqLen, batch, accum, steps, warmup         int
	samples, evalEvery, patience, saveEvery, promptLen        int
	span, dataRepeat                                          int
	scoreFrom                                                 int
	threads                                                   int
	lr, wd, clip, valFrac, repeat, sampleTemp, ema, beta2     float64
	seed                                                      uint64
	asJSON, truncate, samplesSet                              bool
}

func parse(args []string, stderr io.Writer) (*flags, error) {
	f := &flags{}
	fs := flag.NewFlagSet("finetune", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.dir, "model", "", "input Hugging Face checkpoint `directory`")
	fs.StringVar(&f.out, "out", "", "output checkpoint `directory` (written atomically)")
	fs.StringVar(&f.lazy, "lazy", "", "comma-separated streaming layers, e.g. 2,4")
	fs.IntVar(&f.sink, "sink", model.DefaultSink, "attention-sink tokens of the streaming layers")
	fs.IntVar(&f.window, "window", model.DefaultWindow, "recent window of the streaming layers, the query's own token included")
	fs.StringVar(&f.data, "data", "", "comma-separated JSONL training `files` (default: sequences sampled from the model)")
	fs.StringVar(&f.exclude, "exclude", "", "comma-separated JSON token files kept out of the sampled data")
	fs.IntVar(&f.samples, "samples", 4800, "sequences to sample from the model (with -data: none unless set, then mixed with the data)")
	fs.IntVar(&f.dataRepeat, "data-repeat", 1, "times each -data sequence appears in the training set (weighs data against samples)")
	fs.BoolVar(&f.truncate, "truncate", false, "cut -data texts longer than -seq-len to their first -seq-len tokens (default: an error)")
	fs.Float64Var(&f.repeat, "repeat", 0.5, "fraction of sampled sequences that continue from a repeated span of their first half (long-range copying)")
	fs.IntVar(&f.span, "span", 24, "tokens of each repeated span (-repeat; sequences whose first half cannot hold one are not repeated)")
	fs.Float64Var(&f.sampleTemp, "sample-temp", 1, "temperature of the sampled sequences")
	fs.IntVar(&f.scoreFrom, "score-from", 0, "train and validate only on the rows predicting tokens N.. of each sequence (0: all rows)")
	fs.Float64Var(&f.valFrac, "val-frac", 0.05, "fraction of the data held out for validation and early stopping")
	fs.IntVar(&f.seqLen, "seq-len", 256, "tokens per training sequence")
	fs.IntVar(&f.batch, "batch", 16, "sequences per micro-batch")
	fs.IntVar(&f.accum, "accum", 1, "micro-batches per optimizer step")
	fs.IntVar(&f.steps, "steps", 1000, "optimizer steps")
	fs.StringVar(&f.lossName, "loss", "distill", "objective: distill (KL to the full-attention model) or ce (next-token cross-entropy)")
	fs.StringVar(&f.params, "params", "all", "tensors to train: all, layers (decoder layers only) or lazy (the streaming layers only)")
	fs.Float64Var(&f.lr, "lr", 2e-3, "peak learning rate")
	fs.IntVar(&f.warmup, "warmup", 50, "linear warmup steps")
	fs.Float64Var(&f.ema, "ema", 0, "decay of an exponential moving average of the weights that validation, early stopping and the output use (0: none)")
	fs.Float64Var(&f.wd, "wd", 0.01, "AdamW weight decay")
	fs.Float64Var(&f.beta2, "beta2", 0.999, "AdamW second-moment decay")
	fs.Float64Var(&f.clip, "clip", 1, "global gradient-norm clipping (<= 0: none)")
	fs.Uint64Var(&f.seed, "seed", 1, "seed of the sampled data and the data order")
	fs.IntVar(&f.evalEvery, "eval-every", 100, "steps between validation passes")
	fs.IntVar(&f.patience, "patience", 4, "validation passes without improvement before stopping (<= 0: never)")
	fs.IntVar(&f.saveEvery, "save-every", 0, "write a resumable state to OUT.state every N steps (0: never)")
	fs.StringVar(&f.resume, "resume", "", "continue from a state `directory` written by -save-every")
	fs.StringVar(&f.watch, "watch", "", "comma-separated JSON token files whose fixed-mask NLL (tokens -prompt-len..) each validation pass reports; never trained on")
	fs.DurationVar(&f.maxTime, "max-time", 7*time.Minute, "stop training after this long, keeping the best weights (0: no limit)")
	fs.IntVar(&f.threads, "threads", 0, "threads of the teacher and sampler (0: all CPUs)")
	fs.StringVar(&f.evalFile, "eval", "", "evaluate the NLL of these comma-separated JSON token `files` (a directory: every *.json in it) instead of training")
	fs.StringVar(&f.base, "base", "", "with -eval: the checkpoint `directory` trained from; also prints its NLLs and the share of its fixed-mode gap recovered")
	fs.IntVar(&f.promptLen, "prompt-len", 0, "with -eval: tokens of context before the scored ones")
	fs.BoolVar(&f.asJSON, "json", false, "print one JSON object")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	fs.Visit(func(fl *flag.Flag) { f.samplesSet = f.samplesSet || fl.Name == "samples" })
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if f.dir == "" {
		return nil, errors.New("-model is required")
	}
	return f, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f, err := parse(args, stderr)
	if err != nil {
		return err
	}
	lazy, err := train.ParseLayers(f.lazy)
	if err != nil {
		return err
	}
	mask := train.Mask{Lazy: lazy, Sink: f.sink, Window: f.window}
	var lopts []model.LoadOption
	if f.threads > 0 {
		lopts = append(lopts, model.WithThreads(f.threads))
	}
	m, err := model.Load(ctx, f.dir, append(lopts, model.WithLogger(slog.New(slog.DiscardHandler)))...)
	if err != nil {
		return err
	}
	defer m.Close()
	if err := mask.Validate(m.Config().NumLayers); err != nil {
		return err
	}
	if f.evalFile != "" {
		return evaluate(ctx, m, f, mask, stdout)
	}
	if len(lazy) == 0 {
		return errors.New("-lazy is required to train")
	}
	if f.out == "" {
		return errors.New("-out is required")
	}
	return fineTune(ctx, m, f, mask, stdout, stderr)
}

// textScore is one evaluated text: the NLLs of the model (fixed mode, full attention) and,
// with -base, of the checkpoint it was trained from.
type textScore struct {
	File      string   `json:"file"`
	Fixed     float64  `json:"fixed_nll"`
	Full      float64  `json:"full_nll"`
	BaseFixed *float64 `json:"base_fixed_nll,omitempty"`
	BaseFull  *float64 `json:"base_full_nll,omitempty"`
	Recovered *float64 `json:"recovered,omitempty"` // (base fixed − fixed) / (base fixed − base full); absent when the base has no gap
}

func evaluate(ctx context.Context, m *model.Model, f *flags, mask train.Mask, stdout io.Writer) error {
	if len(lazy(mask)) == 0 {
		return errors.New("-eval needs -lazy")
	}
	files, err := evalFiles(f.evalFile)
	if err != nil {
		return err
	}
	var base *model.Model
	if f.base != "" {
		if base, err = model.Load(ctx, f.base, model.WithLogger(slog.New(slog.DiscardHandler))); err != nil {
			return err
		}
		defer base.Close()
	}
	score := func(m *model.Model, toks []int32, path string) (fixed, full float64, err error) {
		if fixed, err = train.NLL(ctx, m, toks, f.promptLen, mask); err != nil {
			return 0, 0, fmt.Errorf("%s: %w", path, err)
		}
		if full, err = train.NLL(ctx, m, toks, f.promptLen, train.Mask{}); err != nil {
			return 0, 0, fmt.Errorf("%s: %w", path, err)
		}
		return fixed, full, nil
	}
	var texts []textScore
	for _, p := range files {
		toks, err := readTokens(p)
		if err != nil {
			return err
		}
		ts := textScore{File: p}
		if ts.Fixed, ts.Full, err = score(m, toks, p); err != nil {
			return err
		}
		if base != nil {
			bf, bu, err := score(base, toks, p)
			if err != nil {
				return err
			}
			ts.BaseFixed, ts.BaseFull, ts.Recovered = &bf, &bu, recovered(bf, ts.Fixed, bu)
		}
		texts = append(texts, ts)
	}
	if len(texts) == 1 && base == nil { // one text: the two numbers, as before
		t := texts[0]
		if f.asJSON {
			return json.NewEncoder(stdout).Encode(map[string]float64{"fixed_nll": t.Fixed, "full_nll": t.Full})
		}
		_, err = fmt.Fprintf(stdout, "fixed_nll %.4f full_nll %.4f (tokens %d.., lazy %v, sink %d, window %d)\n",
			t.Fixed, t.Full, f.promptLen, mask.Lazy, mask.Sink, mask.Window)
		return err
	}
	mean := textScore{File: "mean"}
	var bf, bu float64
	for _, t := range texts {
		mean.Fixed += t.Fixed / float64(len(texts))
		mean.Full += t.Full / float64(len(texts))
		if base != nil {
			bf += *t.BaseFixed / float64(len(texts))
			bu += *t.BaseFull / float64(len(texts))
		}
	}
	if base != nil {
		mean.BaseFixed, mean.BaseFull, mean.Recovered = &bf, &bu, recovered(bf, mean.Fixed, bu)
	}
	if f.asJSON {
		return json.NewEncoder(stdout).Encode(struct {
			Texts []textScore `json:"texts"`
			Mean  textScore   `json:"mean"`
		}{texts, mean})
	}
	for _, t := range append(texts, mean) {
		line := fmt.Sprintf("%s fixed_nll %.4f full_nll %.4f", t.File, t.Fixed, t.Full)
		if t.BaseFixed != nil {
			line += fmt.Sprintf(" base_fixed_nll %.4f base_full_nll %.4f", *t.BaseFixed, *t.BaseFull)
		}
		if t.Recovered != nil {
			line += fmt.Sprintf(" recovered %.1f%%", 100**t.Recovered)
		}
		if _, err := fmt.Fprintln(stdout, line); err != nil {
			return err
		}
	}
	return nil
}

// recovered is the share of the base model's fixed-mode gap (before − full) that after
// closes; nil when there is no gap (the streaming mask costs the base nothing on that text).
func recovered(before, after, full float64) *float64 {
	if before == full {
		return nil
	}
	r := (before - after) / (before - full)
	return &r
}

// evalFiles expands -eval's comma-separated list: files as given, directories to their *.json
// files in name order.
func evalFiles(list string) ([]string, error) {
	var out []string
	for _, p := range strings.Split(list, ",") {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			out = append(out, p)
			continue
		}
		fs, err := filepath.Glob(filepath.Join(p, "*.json"))
		if err != nil {
			return nil, err
		}
		if len(fs) == 0 {
			return nil, fmt.Errorf("%s: no *.json token files", p)
		}
		out = append(out, fs...)
	}
	return out, nil
}

func lazy(m train.Mask) []int { return m.Lazy }

func fineTune(ctx context.Context, m *model.Model, f *flags, mask train.Mask, stdout, stderr io.Writer) error {
	loss := train.Distill
	switch f.lossName {
	case "distill":
	case "ce":
		loss = train.CrossEntropy
	default:
		return fmt.Errorf("-loss %q: want distill or ce", f.lossName)
	}
	params, err := train.ParseParams(f.params)
	if err != nil {
		return err
	}
	cfg := m.Config()
	if f.seqLen < 2 || f.seqLen > cfg.MaxPositions {
		return fmt.Errorf("%w: -seq-len %d: want 2..%d (the model's context)", train.ErrConfig, f.seqLen, cfg.MaxPositions)
	}
	if f.valFrac < 0 || f.valFrac >= 1 {
		return fmt.Errorf("%w: -val-frac %v: want [0, 1)", train.ErrConfig, f.valFrac)
	}
	if f.samples < 0 || f.dataRepeat < 1 {
		return fmt.Errorf("%w: -samples %d, -data-repeat %d: want >= 0 and >= 1", train.ErrConfig, f.samples, f.dataRepeat)
	}
	w, err := train.LoadWeights(f.dir)
	if err != nil {
		return err
	}
	sampled, data, err := loadData(ctx, m, w, f, stderr)
	if err != nil {
		return err
	}
	for _, set := range [][]train.Sequence{sampled, data} { // -score-from: rows predicting tokens before it are not scored
		for _, s := range set {
			for j := 0; j+1 < f.scoreFrom && j < len(s.Targets); j++ {
				s.Targets[j] = -1
			}
		}
	}
	// The held-out share comes from the sampled sequences when there are any (the data's
	// repeats would otherwise train on it), else from the data before it is repeated.
	held := sampled
	if len(held) == 0 {
		held = data
	}
	nVal := int(math.Round(f.valFrac * float64(len(held))))
	if f.valFrac > 0 && nVal == 0 && len(held) > 1 {
		nVal = 1
	}
	val := held[:nVal]
	if len(sampled) > 0 {
		sampled = sampled[nVal:]
	} else {
		data = data[nVal:]
	}
	trainSeqs := sampled
	for range f.dataRepeat {
		trainSeqs = append(trainSeqs, data...)
	}
	opts := train.Options{Mask: mask, Loss: loss, Params: params, Batch: f.batch, Accum: f.accum, Steps: f.steps,
		AdamW: train.AdamW{LR: f.lr, Beta2: f.beta2, WeightDecay: orNone(f.wd)}, Warmup: f.warmup, ClipNorm: orNone(f.clip),
		Seed: f.seed, EvalEvery: f.evalEvery, Patience: orNever(f.patience)}
	opts.MaxTime, opts.EMA = f.maxTime, f.ema
	if f.watch != "" {
		for _, p := range strings.Split(f.watch, ",") {
			t, err := readTokens(p)
			if err != nil {
				return err
			}
			from := f.promptLen
			if from <= 0 {
				from = len(t) / 2
			}
			opts.Watch = append(opts.Watch, train.Text{Name: strings.TrimSuffix(filepath.Base(p), ".json"), Tokens: t, From: from})
		}
	}
	if f.saveEvery > 0 {
		opts.SaveEvery = f.saveEvery
		opts.Save = func(st *train.State) error { return train.SaveState(f.out+".state", st) }
	}
	if f.resume != "" {
		if opts.Resume, err = train.LoadState(f.resume, w); err != nil {
			return err
		}
	}
	opts.Progress = func(p train.Progress) {
		line := fmt.Sprintf("step %d/%d loss %.4f lr %.2e |g| %.3f tok/s %.0f eta %s", p.Step, p.Steps, p.Loss, p.LR,
			p.GradNorm, p.TokensPerSec, p.ETA.Round(time.Second))
		if !math.IsNaN(p.Val) {
			line += fmt.Sprintf(" val_nll %.4f best %.4f", p.Val, p.Best)
			for i, x := range p.Watch {
				line += fmt.Sprintf(" %s %.4f", opts.Watch[i].Name, x)
			}
		}
		fmt.Fprintln(stderr, line)
	}
	fmt.Fprintf(stderr, "training %d sequences of %d tokens (%d held out), lazy %v sink %d window %d, loss %s, params %s\n",
		len(trainSeqs), f.seqLen, len(val), mask.Lazy, mask.Sink, mask.Window, loss, params)
	res, err := train.Run(ctx, w, m, trainSeqs, val, opts)
	if err != nil {
		return err
	}
	if err := train.SaveCheckpoint(f.out, f.dir, res.Weights, mask); err != nil {
		return err
	}
	sum := map[string]any{"out": f.out, "steps": res.Steps, "best_step": res.BestStep, "val_nll_before": res.StartVal,
		"val_nll_best": res.BestVal, "val_nll_full": res.FullVal, "seconds": res.Elapsed.Seconds()}
	if math.IsNaN(res.FullVal) || math.IsNaN(res.StartVal) {
		delete(sum, "val_nll_full")
		delete(sum, "val_nll_before")
	}
	if f.asJSON {
		return json.NewEncoder(stdout).Encode(sum)
	}
	_, err = fmt.Fprintf(stdout, "wrote %s: %d steps in %s, best step %d, held-out fixed NLL %.4f -> %.4f (full attention %.4f, %.0f%% of the gap recovered)\n",
		f.out, res.Steps, res.Elapsed.Round(time.Second), res.BestStep, res.StartVal, res.BestVal, res.FullVal,
		100*(res.StartVal-res.BestVal)/(res.StartVal-res.FullVal))
	return err
}

func orNone(x float64) float64 {
	if x <= 0 {
		return -1
	}
	return x
}

func orNever(n int) int {
	if n <= 0 {
		return -1
	}
	return n
}

// loadData returns the training sequences: those sampled from the checkpoint (w; m gives
// the greedy continuation kept out of them), -samples of them (with -data, none unless
// -samples is set), and those of the -data files, packed (texts longer than -seq-len cut with
// -truncate). With distillation the data's teacher probabilities are computed here, once.
func loadData(ctx context.Context, m *model.Model, w *train.Weights, f *flags, stderr io.Writer) (sampled, data []train.Sequence, err error) {
	if f.data != "" {
		if data, err = readData(ctx, m, f); err != nil {
			return nil, nil, err
		}
	}
	n := f.samples
	if f.data != "" && !f.samplesSet {
		n = 0
	}
	if n == 0 {
		return nil, data, nil
	}
	bos := int32(1)
	if b := m.Config().BOS; len(b) > 0 {
		bos = b[0]
	}
	// The model's greedy continuation of BOS is its natural evaluation text: keep it out.
	g, err := m.GenerateTokens(ctx, []int32{bos}, model.WithMaxTokens(f.seqLen-1), model.WithIgnoreEOS())
	if err != nil {
		return nil, nil, err
	}
	texts := [][]int32{append([]int32{bos}, g.Tokens...)}
	if f.exclude != "" {
		for _, p := range strings.Split(f.exclude, ",") {
			t, err := readTokens(p)
			if err != nil {
				return nil, nil, err
			}
			texts = append(texts, t)
		}
	}
	start := time.Now()
	sampled, err = train.Sample(ctx, w, train.SampleOptions{N: n, T: f.seqLen, BOS: bos, Seed: f.seed * 1_000_003, Threads: f.threads,
		Teacher: f.lossName == "distill",
		Exclude: train.NewNGrams(32, texts...), Repeat: f.repeat, Span: f.span, Temperature: f.sampleTemp, Progress: func(done int) {
			if done%64 == 0 || done == n {
				fmt.Fprintf(stderr, "sampled %d/%d sequences (%s)\n", done, n, time.Since(start).Round(time.Second))
			}
		}})
	return sampled, data, err
}

// readData parses, tokenizes and packs the comma-separated -data files.
func readData(ctx context.Context, m *model.Model, f *flags) ([]train.Sequence, error) {
	tok := m.Tokenizer()
	if tok == nil {
		return nil, fmt.Errorf("-data needs the checkpoint's tokenizer.json")
	}
	var out []train.Sequence
	for _, p := range strings.Split(f.data, ",") {
		r, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		recs, err := train.ParseJSONL(r, p)
		r.Close()
		if err != nil {
			return nil, err
		}
		exs, err := train.Tokenize(recs, tok, p)
		if err != nil {
			return nil, err
		}
		if f.truncate {
			for i := range exs {
				exs[i].Tokens = exs[i].Tokens[:min(len(exs[i].Tokens), f.seqLen)]
			}
		}
		seqs, err := train.Pack(exs, f.seqLen, p)
		if err != nil {
			if errors.Is(err, train.ErrData) && !f.truncate {
				err = fmt.Errorf("%w (-truncate cuts such texts to -seq-len)", err)
			}
			return nil, err
		}
		out = append(out, seqs...)
	}
	if f.lossName == "distill" {
		if err := train.AttachTeacher(ctx, m, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func readTokens(path string) ([]int32, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var toks []int32
	if err := json.Unmarshal(b, &toks); err != nil {
		return nil, fmt.Errorf("%s: want a JSON array of token ids: %w", filepath.Base(path), err)
	}
	if len(toks) == 0 {
		return nil, fmt.Errorf("%s: no tokens", path)
	}
	return toks, nil
}
