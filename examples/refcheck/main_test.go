package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lighttransfer/lighttransfer-go/internal/testutil"
)

// TestRefcheckAll runs the command on every shared checkpoint: every line must pass, keys it
// cannot check are never reported as pass, and a directory without references is skipped.
func TestRefcheckAll(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join(testutil.Shared(t, "reference"), "*"))
	require.NoError(t, err)
	args := append(dirs, testutil.Shared(t, "models", "stories260K"), t.TempDir())
	var out, errb bytes.Buffer
	require.NoError(t, run(context.Background(), args, &out, &errb), out.String())
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 5*5, out.String())
	for _, l := range lines {
		require.Contains(t, l, " pass ", l)
	}
	require.Contains(t, errb.String(), "skipped")
}

// TestRefcheckDetectsBadLogits corrupts one reference logit: refcheck must report FAIL and
// return an error.
func TestRefcheckDetectsBadLogits(t *testing.T) {
	src := testutil.Shared(t, "reference", "llama-tiny")
	dst := t.TempDir()
	for _, f := range []string{"config.json", "model.safetensors"} {
		require.NoError(t, testutil.CopyFile(filepath.Join(dst, f), filepath.Join(src, f)))
	}
	ref, err := os.ReadFile(filepath.Join(src, "reference.json"))
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(ref, &doc))
	row := doc["logits_full"].([]any)[3].([]any)
	row[7] = row[7].(float64) + 0.01 // far above the 1e-5 relative tolerance
	ref, err = json.Marshal(doc)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dst, "reference.json"), ref, 0o644))
	var out, errb bytes.Buffer
	require.Error(t, run(context.Background(), []string{dst}, &out, &errb))
	require.Contains(t, out.String(), "logits_full FAIL")
}

func TestRefcheckTokenizer(t *testing.T) {
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"-tokenizer", testutil.Shared(t, "tokenizers", "qwen2.5"),
		testutil.Shared(t, "tokenizers", "qwen2.5", "cases.json")}, &out, &errb)
	require.NoError(t, err, out.String())
	require.Contains(t, out.String(), "passed=154 failed=0")

	out.Reset()
	err = run(context.Background(), []string{"-tokenizer", testutil.Shared(t, "models", "stories260K"),
		testutil.Shared(t, "tokenizers", "tok512", "cases.json")}, &out, &errb)
	require.NoError(t, err, out.String())
	require.Contains(t, out.String(), "passed=154 failed=0")

	// The Qwen cases against the tok512 tokenizer must fail.
	out.Reset()
	err = run(context.Background(), []string{"-tokenizer", testutil.Shared(t, "models", "stories260K"),
		testutil.Shared(t, "tokenizers", "qwen2.5", "cases.json")}, &out, &errb)
	require.Error(t, err)
	require.Contains(t, out.String(), "FAIL")
}

// TestRefcheckQuantizedInfo: with -weights q8 or q4 every comparison is an info line with its
// error sizes (the weights are lossy, so nothing is held to the float tolerance) and the
// command succeeds; the errors are nonzero and q4's exceed q8's.
func TestRefcheckQuantizedInfo(t *testing.T) {
	dir := testutil.Shared(t, "models", "stories260K")
	errs := map[string]string{}
	for _, w := range []string{"q8", "q4"} {
		var out, errb bytes.Buffer
		require.NoError(t, run(context.Background(), []string{"-weights", w, dir}, &out, &errb), out.String())
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		require.Len(t, lines, 5, out.String())
		for _, l := range lines {
			require.Contains(t, l, " info ", l)
		}
		require.NotContains(t, lines[0], "max_abs_err=0 ")
		errs[w] = lines[0]
	}
	var e8, e4 float64
	_, err := fmt.Sscanf(errs["q8"][strings.Index(errs["q8"], "max_abs_err="):], "max_abs_err=%g", &e8)
	require.NoError(t, err)
	_, err = fmt.Sscanf(errs["q4"][strings.Index(errs["q4"], "max_abs_err="):], "max_abs_err=%g", &e4)
	require.NoError(t, err)
	require.Greater(t, e4, e8)
	require.Error(t, run(context.Background(), []string{"-weights", "q5", dir}, &bytes.Buffer{}, &bytes.Buffer{}))
}
