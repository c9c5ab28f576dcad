// Command selectlayers measures each layer's lazy ratio on a prompt, shows the layers
// LightTransfer's Test mode makes lazy, optionally evaluates that choice against alternatives,
// and calibrates fixed-mode plans.
//
//	go run ./examples/selectlayers -model DIR -tokens FILE.json -prompt-len 128 -sink 4 -window 32 -eval
//	go run ./examples/selectlayers -model DIR -prompt-len 512 -calibrate a.json b.json > plan.json
//
// -tokens (and each -calibrate file) is a JSON array of token ids, BOS first.
//
// With -eval it compares four choices of streaming layers — none (full attention), the layers
// with the highest ratios (Test mode), the same number with the lowest ratios (reverse), and
// all layers — by prefilling the first N tokens with full attention in every layer, truncating
// the chosen layers' caches, decoding the rest teacher-forced and reporting the mean next-token
// negative log-likelihood over tokens N..T-1 and the top-1 agreement with full attention.
// -kv f32|bf16|q8|q4 sets the KV cache's element type for every choice (the top-1 agreement is
// then with full attention at that type).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"slices"
	"strings"

	"github.com/lighttransfer/lighttransfer-go/kvcache"
	"github.com/lighttransfer/lighttransfer-go/layerselect"
	"github.com/lighttransfer/lighttransfer-go/model"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "selectlayers:", err)
		os.Exit(1)
	}
}

// Score is one choice's quality on the scored tokens.
type Score struct {
	NLL  float64 `json:"nll"`  // mean next-token negative log-likelihood (nats)
	Top1 float64 `json:"top1"` // fraction of predictions whose argmax equals full attention's
}

// Report is what -json prints.
type Report struct {
	Ratios []float64        `json:"ratios"`
	Lazy   []int            `json:"lazy"`
	Eval   map[string]Score `json:"eval,omitempty"`
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("selectlayers", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("model", "", "Hugging Face checkpoint `directory`")
	tokensFile := fs.String("tokens", "", "JSON array of token ids, BOS first")
	promptLen := fs.Int("prompt-len", 0, "tokens of the prompt the ratios are measured on (N)")
	sink := fs.Int("sink", model.DefaultSink, "attention-sink tokens of streaming layers (w_sink)")
	window := fs.Int("window", model.DefaultWindow, "recent window of streaming layers (w_recent)")
	last := fs.Int("last", model.DefaultLast, "prompt queries the ratio averages over (w_last)")
	keep := fs.Float64("keep", model.DefaultKeep, "fraction of layers kept full")
	eval := fs.Bool("eval", false, "evaluate full, ratio, reverse and all-streaming choices on the rest of -tokens")
	asJSON := fs.Bool("json", false, "print one JSON object")
	calibrate := fs.Bool("calibrate", false, "calibrate a plan over the token files given as arguments and print it")
	kvName := fs.String("kv", "f32", "KV cache element `type` of -eval: f32, bf16, q8 or q4")
	weights := fs.String("weights", "auto", "weight format: auto, f32, bf16, q8 or q4")
	if err := fs.Parse(args); err != nil {
		return err
	}
	kv, err := kvcache.ParseType(*kvName)
	if err != nil {
		return fmt.Errorf("-kv: %w", err)
	}
	if *dir == "" {
		return errors.New("-model is required")
	}
	if *promptLen <= 0 {
		return errors.New("-prompt-len must be > 0")
	}
	format, err := model.ParseWeightFormat(*weights)
	if err != nil {
		return fmt.Errorf("-weights: %w", err)
	}
	m, err := model.Load(ctx, *dir, model.WithoutTokenizer(), model.WithWeightFormat(format))
	if err != nil {
		return err
	}
	stream := []model.StreamOption{model.WithSink(*sink), model.WithWindow(*window), model.WithLast(*last), model.WithKeep(*keep)}

	if *calibrate {
		if fs.NArg() == 0 {
			return errors.New("-calibrate needs token files as arguments")
		}
		var runs [][]float64
		for _, f := range fs.Args() {
			toks, err := readTokens(f)
			if err != nil {
				return err
			}
			ratios, _, err := measure(ctx, m, toks[:min(*promptLen, len(toks))], stream)
			if err != nil {
				return fmt.Errorf("%s: %w", f, err)
			}
			runs = append(runs, ratios)
		}
		plan, err := layerselect.Calibrate(runs, *keep, *sink, *window)
		if err != nil {
			return err
		}
		plan.Source = fmt.Sprintf("selectlayers -calibrate over %d prompts of %d tokens, w_last %d", len(runs), *promptLen, *last)
		_, err = plan.WriteTo(stdout)
		return err
	}

	if *tokensFile == "" {
		return errors.New("-tokens is required")
	}
	toks, err := readTokens(*tokensFile)
	if err != nil {
		return err
	}
	if *promptLen > len(toks) {
		return fmt.Errorf("-prompt-len %d exceeds the %d tokens of %s", *promptLen, len(toks), *tokensFile)
	}
	ratios, lazy, err := measure(ctx, m, toks[:*promptLen], stream)
	if err != nil {
		return err
	}
	rep := Report{Ratios: ratios, Lazy: lazy}
	if *eval {
		if *promptLen >= len(toks) {
			return errors.New("-eval needs tokens after -prompt-len to score")
		}
		L := m.Config().NumLayers
		reverse := lowest(ratios, len(lazy))
		all := make([]int, L)
		for i := range all {
			all[i] = i
		}
		choices := []struct {
			name string
			lazy []int
		}{{"full", nil}, {"ratio", lazy}, {"reverse", reverse}, {"streaming", all}}
		var fullArgmax []int32
		rep.Eval = map[string]Score{}
		for _, c := range choices {
			nll, am, err := score(ctx, m, toks, *promptLen, c.lazy, stream, kv)
			if err != nil {
				return fmt.Errorf("eval %s: %w", c.name, err)
			}
			if fullArgmax == nil {
				fullArgmax = am
			}
			agree := 0
			for i := range am {
				if am[i] == fullArgmax[i] {
					agree++
				}
			}
			rep.Eval[c.name] = Score{NLL: nll, Top1: float64(agree) / float64(len(am))}
		}
		if !*asJSON {
			defer func() {
				fmt.Fprintf(stdout, "%-10s %-14s %8s %6s\n", "choice", "lazy layers", "nll", "top1")
				for _, c := range choices {
					s := rep.Eval[c.name]
					fmt.Fprintf(stdout, "%-10s %-14s %8.4f %6.3f\n", c.name, fmt.Sprint(orEmpty(c.lazy)), s.NLL, s.Top1)
				}
			}()
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		return enc.Encode(rep)
	}
	var parts []string
	for i, r := range ratios {
		parts = append(parts, fmt.Sprintf("%d:%.4f", i, r))
	}
	fmt.Fprintf(stdout, "lazy ratios (N=%d): %s\n", *promptLen, strings.Join(parts, " "))
	fmt.Fprintf(stdout, "lazy layers: %v\n", orEmpty(lazy))
	return nil
}

func orEmpty(x []int) []int {
	if x == nil {
		return []int{}
	}
	return x
}

// measure runs Test mode on prompt and returns every layer's ratio and the chosen layers.
func measure(ctx context.Context, m *model.Model, prompt []int32, stream []model.StreamOption) ([]float64, []int, error) {
	s, err := m.NewSession(model.TestMode(stream...))
	if err != nil {
		return nil, nil, err
	}
	defer s.Close()
	if _, err := s.Next(ctx, prompt); err != nil {
		return nil, nil, err
	}
	r := s.Ratios()
	if r == nil {
		return nil, nil, fmt.Errorf("a prompt of %d tokens is too short to measure ratios (it must exceed sink+window and w_last)", len(prompt))
	}
	return r, s.Lazy(), nil
}

// lowest returns the k layers with the lowest ratios (ties: lower index first), sorted.
func lowest(ratios []float64, k int) []int {
	idx := make([]int, len(ratios))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		switch {
		case ratios[a] < ratios[b]:
			return -1
		case ratios[a] > ratios[b]:
			return 1
		}
		return 0
	})
	out := slices.Clone(idx[:k])
	slices.Sort(out)
	return out
}

// score prefills toks[:n] with full attention everywhere and a KV cache of type kv, makes the given layers streaming,
// decodes the rest teacher-forced and returns the mean NLL of tokens n..T-1 and each
// prediction's argmax.
func score(ctx context.Context, m *model.Model, toks []int32, n int, lazy []int, stream []model.StreamOption, kv kvcache.Type) (float64, []int32, error) {
	// Keep 1 keeps every layer full during the prefill; the sink and window are those given.
	s, err := m.NewSession(model.TestMode(append(slices.Clone(stream), model.WithKeep(1))...), model.WithKV(kv))
	if err != nil {
		return 0, nil, err
	}
	defer s.Close()
	logits, err := s.Next(ctx, toks[:n])
	if err != nil {
		return 0, nil, err
	}
	if err := s.MakeStreaming(lazy...); err != nil {
		return 0, nil, err
	}
	var nll float64
	var am []int32
	for t := n; t < len(toks); t++ {
		nll += -logSoftmax(logits, toks[t])
		am = append(am, argmax(logits))
		if t+1 < len(toks) {
			if logits, err = s.Next(ctx, toks[t:t+1]); err != nil {
				return 0, nil, err
			}
		}
	}
	return nll / float64(len(toks)-n), am, nil
}

func logSoftmax(logits []float32, id int32) float64 {
	mx := math.Inf(-1)
	for _, v := range logits {
		mx = math.Max(mx, float64(v))
	}
	var sum float64
	for _, v := range logits {
		sum += math.Exp(float64(v) - mx)
	}
	return float64(logits[id]) - mx - math.Log(sum)
}

func argmax(x []float32) int32 {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return int32(best)
}

func readTokens(path string) ([]int32, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var toks []int32
	if err := json.Unmarshal(b, &toks); err != nil {
		return nil, fmt.Errorf("%s: want a JSON array of token ids: %w", path, err)
	}
	if len(toks) == 0 {
		return nil, fmt.Errorf("%s: no tokens", path)
	}
	return toks, nil
}
