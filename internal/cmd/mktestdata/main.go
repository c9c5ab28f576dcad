// Command mktestdata writes the repository's testdata files from the team's reference data
// folder, by the rules of package fixtures (copies, gzip, compact references):
//
//	go run ./internal/cmd/mktestdata -shared DIR [-out testdata]
//
// DIR is the reference data folder (the one whose models/, reference/ and tokenizers/ the
// files come from). With -check it writes nothing and lists the files that disagree instead,
// exiting non-zero when any does.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/lighttransfer/lighttransfer-go/internal/fixtures"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "mktestdata:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mktestdata", flag.ContinueOnError)
	fs.SetOutput(stderr)
	shared := fs.String("shared", "", "the reference data `DIR` to convert (required)")
	out := fs.String("out", "testdata", "the testdata `DIR` to write")
	check := fs.Bool("check", false, "compare instead of writing")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *shared == "" {
		fs.Usage()
		return errors.New("-shared is required")
	}
	if *check {
		diffs, err := fixtures.Compare(*shared, *out)
		if err != nil {
			return err
		}
		for _, d := range diffs {
			fmt.Fprintln(stdout, d)
		}
		if len(diffs) > 0 {
			return fmt.Errorf("%d files disagree", len(diffs))
		}
		return nil
	}
	if err := fixtures.Convert(*shared, *out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %d files under %s\n", len(fixtures.Files()), *out)
	return nil
}
