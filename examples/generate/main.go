// Command generate continues a prompt with a language model, streaming the text to stdout.
//
//	go run ./examples/generate -prompt "Once upon a time" -n 240
//	go run ./examples/generate -model DIR -prompt "..." -mode test -keep 0.5 -sink 4 -window 1020
//	go run ./examples/generate -model DIR -prompt "..." -mode test -kv q8
//
// -kv f32|bf16|q8|q4 sets the KV cache's element type (default f32).
// stdout receives exactly the prompt followed by the generated text; the one-line summary
// (tokens, tok/s, KV bytes) and errors go to stderr. Without -model it uses the small real
// model in the repository's testdata/stories260K (run it from the repository root).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"

	"github.com/lighttransfer/lighttransfer-go/internal/cliflags"
	"github.com/lighttransfer/lighttransfer-go/loader/tokenizer"
	"github.com/lighttransfer/lighttransfer-go/model"
)

// defaultModel is the small real model in the repository's testdata, relative to the
// repository root.
const defaultModel = "testdata/stories260K"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "generate:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("generate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("model", "", "Hugging Face checkpoint `directory` (default "+defaultModel+" when present)")
	prompt := fs.String("prompt", "", "prompt text (empty: start from BOS)")
	chat := fs.Bool("chat", false, "treat -prompt as a user message and apply the chat template")
	n := fs.Int("n", 128, "tokens to generate at most")
	temp := fs.Float64("temp", 0, "sampling temperature (0: greedy)")
	topK := fs.Int("top-k", 0, "keep the K most likely tokens (0: all)")
	topP := fs.Float64("top-p", 0, "nucleus sampling threshold in (0, 1] (0: off)")
	minP := fs.Float64("min-p", 0, "drop tokens below this fraction of the best one's probability")
	rep := fs.Float64("repeat-penalty", 0, "repetition penalty (0 or 1: none)")
	seed := fs.Uint64("seed", 0, "random seed for sampling")
	var stops stringList
	fs.Var(&stops, "stop", "stop `string` (repeatable)")
	var attn cliflags.Attention
	attn.Register(fs)
	threads := fs.Int("threads", 0, "threads (0: GOMAXPROCS)")
	verbose := fs.Bool("v", false, "log loading details to stderr")
	weights := fs.String("weights", "auto", "weight format: auto, f32, bf16, q8 or q4")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *dir == "" {
		if _, err := os.Stat(defaultModel); err != nil {
			return errors.New("no -model given and " + defaultModel + " is not here (run from the repository " +
				"root for the small model it ships), or download a Hugging Face " +
				"checkpoint (config.json, *.safetensors, tokenizer.json), e.g. with `huggingface-cli download " +
				"Qwen/Qwen2.5-0.5B-Instruct --local-dir DIR`, and pass -model DIR")
		}
		*dir = defaultModel
	}
	if err := attn.Visit(fs); err != nil {
		return err
	}
	kv, err := attn.KVType()
	if err != nil {
		return fmt.Errorf("-kv: %w", err)
	}
	sessOpts, err := attn.SessionOptions()
	if err != nil {
		return err
	}

	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	format, err := model.ParseWeightFormat(*weights)
	if err != nil {
		return fmt.Errorf("-weights: %w", err)
	}
	m, err := model.Load(ctx, *dir, model.WithThreads(*threads), model.WithLogger(logger), model.WithWeightFormat(format))
	if err != nil {
		return err
	}
	opts := []model.GenerateOption{
		model.WithMaxTokens(*n),
		model.WithSampling(model.Sampling{Temperature: *temp, TopK: *topK, TopP: *topP, MinP: *minP,
			RepetitionPenalty: *rep, Seed: *seed}),
		model.WithStop(stops...),
		model.WithSessionOptions(sessOpts...),
		model.WithStream(func(t model.Token) error {
			_, err := io.WriteString(stdout, t.Text)
			return err
		}),
	}
	var res model.Result
	if *chat {
		fmt.Fprint(stdout, *prompt)
		res, err = m.Chat(ctx, []tokenizer.Message{{Role: "user", Content: *prompt}}, opts...)
	} else {
		fmt.Fprint(stdout, *prompt)
		res, err = m.Generate(ctx, *prompt, opts...)
	}
	fmt.Fprintln(stdout)
	if res.GeneratedTokens > 0 || err == nil {
		fmt.Fprintf(stderr, "prompt %d tokens, generated %d (%s), prefill %.1f tok/s, decode %.1f tok/s, KV %d bytes (%v), lazy layers %v\n",
			res.PromptTokens, res.GeneratedTokens, res.Finish,
			float64(res.PromptTokens)/max(res.Prefill.Seconds(), 1e-9), res.DecodeTokensPerSecond(), res.KV.Bytes, kv, res.Lazy)
	}
	return err
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }
