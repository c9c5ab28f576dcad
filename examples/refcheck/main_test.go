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

	"github.com/lighttransfer/lighttransfer-go/internal/refcheck"
	"github.com/lighttransfer/lighttransfer-go/internal/testutil"
)

// TestRefcheckAll runs the command on every checkpoint in testdata: every line must pass, keys it
// cannot check are never reported as pass, and a directory without references is skipped.
func TestRefcheckAll(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join(testutil.Testdata(t, "reference"), "*"))
	require.NoError(t, err)
	args := append(dirs, testutil.Testdata(t, "stories260K"), t.TempDir())
	var out, errb bytes.Buffer
	require.NoError(t, run(context.Background(), args, &out, &errb), out.String())
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 4*5+1+5, out.String()) // qwen3-tiny has logits_full only
	for _, l := range lines {
		require.Contains(t, l, " pass ", l)
	}
	require.Contains(t, errb.String(), "skipped")
}

// copyWithReference copies llama-tiny's checkpoint into a temporary directory and writes ref
// there as reference.json (json true) or reference.safetensors.
func copyWithReference(t *testing.T, ref *refcheck.Reference, asJSON bool) string {
	src := testutil.Testdata(t, "reference", "llama-tiny")
	dst := t.TempDir()
	for _, f := range []string{"config.json", "model.safetensors"} {
		require.NoError(t, testutil.CopyFile(filepath.Join(dst, f), filepath.Join(src, f)))
	}
	if asJSON {
		b, err := json.Marshal(ref)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dst, refcheck.JSONFile), b, 0o644))
	} else {
		b, err := refcheck.EncodeCompact(ref, nil)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dst, refcheck.CompactFile), b, 0o644))
	}
	return dst
}

// TestRefcheckReadsJSON: the reference.json format of the Hugging Face runs is still read, and
// gives the same lines as the compact copy.
func TestRefcheckReadsJSON(t *testing.T) {
	ref, _, err := refcheck.ReadCompact(testutil.Testdata(t, "reference", "llama-tiny", refcheck.CompactFile))
	require.NoError(t, err)
	var outs []string
	for _, asJSON := range []bool{true, false} {
		dir := copyWithReference(t, ref, asJSON)
		var out, errb bytes.Buffer
		require.NoError(t, run(context.Background(), []string{dir}, &out, &errb), out.String())
		outs = append(outs, strings.ReplaceAll(out.String(), dir, "DIR"))
	}
	require.Equal(t, outs[0], outs[1])
	require.Equal(t, 5, strings.Count(outs[0], " pass "), outs[0])
}

// TestRefcheckDetectsBadLogits corrupts one reference logit, in either file format: refcheck
// must report FAIL and return an error.
func TestRefcheckDetectsBadLogits(t *testing.T) {
	for _, asJSON := range []bool{true, false} {
		ref, _, err := refcheck.ReadCompact(testutil.Testdata(t, "reference", "llama-tiny", refcheck.CompactFile))
		require.NoError(t, err)
		ref.LogitsFull[3][7] += 0.01 // far above the 1e-5 relative tolerance
		dst := copyWithReference(t, ref, asJSON)
		var out, errb bytes.Buffer
		require.Error(t, run(context.Background(), []string{dst}, &out, &errb))
		require.Contains(t, out.String(), "logits_full FAIL")
	}
}

func TestRefcheckTokenizer(t *testing.T) {
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"-tokenizer", testutil.Testdata(t, "tokenizers", "qwen2.5"),
		testutil.Testdata(t, "tokenizers", "qwen2.5", "cases.json")}, &out, &errb)
	require.NoError(t, err, out.String())
	require.Contains(t, out.String(), "passed=154 failed=0")

	out.Reset()
	err = run(context.Background(), []string{"-tokenizer", testutil.Testdata(t, "stories260K"),
		testutil.Testdata(t, "tokenizers", "tok512", "cases.json")}, &out, &errb)
	require.NoError(t, err, out.String())
	require.Contains(t, out.String(), "passed=154 failed=0")

	// The Qwen cases against the tok512 tokenizer must fail.
	out.Reset()
	err = run(context.Background(), []string{"-tokenizer", testutil.Testdata(t, "stories260K"),
		testutil.Testdata(t, "tokenizers", "qwen2.5", "cases.json")}, &out, &errb)
	require.Error(t, err)
	require.Contains(t, out.String(), "FAIL")
}

// TestRefcheckQuantizedInfo: with -weights q8 or q4 every comparison is an info line with its
// error sizes (the weights are lossy, so nothing is held to the float tolerance) and the
// command succeeds; the errors are nonzero and q4's exceed q8's.
func TestRefcheckQuantizedInfo(t *testing.T) {
	dir := testutil.Testdata(t, "stories260K")
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
