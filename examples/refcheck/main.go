// Command refcheck compares the library's logits and lazy-layer choices with the Hugging Face
// reference files of checkpoint directories, and checks tokenizers against encode cases.
//
// Usage:
//
//	go run ./examples/refcheck DIR...
//	go run ./examples/refcheck -tokenizer DIR CASES.json...
//	go run ./examples/refcheck -train DIR [-train-model MODELDIR]
//
// Each checkpoint DIR must hold config.json, its weights and a reference: reference.json (the
// format in which Hugging Face references are produced: one JSON object, logits as nested
// arrays) or reference.safetensors (the same content stored compactly, as in the repository's
// testdata); other arguments are skipped with a note. A tokenizer DIR holds tokenizer.json or
// tokenizer.json.gz. refcheck prints one line per check,
// "<dir> <key> pass|FAIL max_abs_err=… tol=… argmax=k/n", and exits non-zero when any check
// fails.
//
// With -weights bf16, q8 or q4 the weights are stored in that lossy format and every
// comparison is printed as an "info" line with its error sizes against the float reference
// (status info instead of pass/FAIL); refcheck then exits 0 unless loading fails. Without the
// flag (or with auto or f32) the float checks keep their tolerance.
//
// -train DIR compares one LightTransfer-Train step (package train) with a PyTorch reference
// (train_step.json, grads.safetensors and the parameters after AdamW) for the starting
// checkpoint in MODELDIR (default DIR), printing train.loss, train.grad and train.adamw lines.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/lighttransfer/lighttransfer-go/internal/refcheck"
	"github.com/lighttransfer/lighttransfer-go/model"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "refcheck:", err)
		os.Exit(1)
	}
}

// errFailed reports that at least one check failed (the lines say which).
var errFailed = errors.New("some checks failed")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("refcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	tokDir := fs.String("tokenizer", "", "check the tokenizer in `DIR` against the CASES.json files given as arguments")
	weights := fs.String("weights", "auto", "weight format: auto, f32 (checked), or bf16, q8, q4 (error sizes reported as info)")
	trainDir := fs.String("train", "", "check a training step against the PyTorch reference in `DIR`")
	trainModel := fs.String("train-model", "", "starting checkpoint `directory` of -train (default: the -train directory)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: refcheck DIR...\n       refcheck -tokenizer DIR CASES.json...\n       refcheck -train DIR [-train-model DIR]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *trainDir != "" {
		return checkTrain(ctx, *trainDir, *trainModel, stdout)
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("no arguments")
	}
	if *tokDir != "" {
		return checkTokenizer(*tokDir, fs.Args(), stdout)
	}
	format, err := model.ParseWeightFormat(*weights)
	if err != nil {
		return fmt.Errorf("-weights: %w", err)
	}
	lossy := format != model.WeightsAuto && format != model.WeightsF32
	failed := false
	for _, dir := range fs.Args() {
		res, err := refcheck.Check(ctx, dir, model.WithWeightFormat(format))
		if errors.Is(err, refcheck.ErrNoReference) {
			fmt.Fprintf(stderr, "%s: skipped: no config.json and reference file there\n", dir)
			continue
		}
		if err != nil {
			fmt.Fprintf(stdout, "%s load FAIL (%v)\n", dir, err)
			failed = true
			continue
		}
		for _, r := range res {
			if lossy && r.Status != refcheck.Skipped {
				r.Status = refcheck.Info
			}
			fmt.Fprintln(stdout, r)
			if r.Status == refcheck.Fail {
				failed = true
			}
		}
	}
	if failed {
		return errFailed
	}
	return nil
}
