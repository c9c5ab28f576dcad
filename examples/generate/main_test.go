package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lighttransfer/lighttransfer-go/internal/testutil"
)

// TestStoryPrefix runs the README's main command on stories260K: greedy decoding of "Once upon
// a time" (the first five tokens of the greedy story from BOS) must print a prefix of that
// story at least 500 characters long on stdout, and nothing else there.
func TestStoryPrefix(t *testing.T) {
	dir := testutil.Testdata(t, "stories260K")
	story, err := os.ReadFile(filepath.Join(dir, "story.txt"))
	require.NoError(t, err)
	var out, errb bytes.Buffer
	err = run(context.Background(), []string{"-model", dir, "-prompt", "Once upon a time", "-n", "240"}, &out, &errb)
	require.NoError(t, err, errb.String())
	got := strings.TrimSuffix(out.String(), "\n")
	require.GreaterOrEqual(t, len(got), 500, got)
	require.True(t, strings.HasPrefix(string(story), got), "stdout is not a prefix of story.txt:\n%s", got)
	require.Contains(t, errb.String(), "tok/s")
}

// TestDefaultModel runs the README's main command as written, from the repository root and
// without -model: the program uses testdata/stories260K and prints a prefix of its story.
// From a directory without that folder it must explain how to point it at a model.
func TestDefaultModel(t *testing.T) {
	story, err := os.ReadFile(testutil.Testdata(t, "stories260K", "story.txt"))
	require.NoError(t, err)
	t.Chdir(testutil.Root(t))
	var out, errb bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"-prompt", "Once upon a time", "-n", "240"}, &out, &errb), errb.String())
	got := strings.TrimSuffix(out.String(), "\n")
	require.GreaterOrEqual(t, len(got), 500, got)
	require.True(t, strings.HasPrefix(string(story), got), "stdout is not a prefix of story.txt:\n%s", got)

	t.Chdir(t.TempDir())
	out.Reset()
	err = run(context.Background(), []string{"-prompt", "x", "-n", "1"}, &out, &errb)
	require.Error(t, err)
	require.Contains(t, err.Error(), "-model")
}

func TestBadFlags(t *testing.T) {
	dir := testutil.Testdata(t, "stories260K")
	for _, args := range [][]string{
		{"-model", dir, "-temp", "-1"},
		{"-model", dir, "-top-p", "1.5", "-temp", "1"},
		{"-model", dir, "-mode", "sideways"},
		{"-model", dir, "-mode", "fixed", "-lazy", "9"},
		{"-model", dir, "-mode", "test", "-keep", "0"},
	} {
		var out, errb bytes.Buffer
		require.Error(t, run(context.Background(), args, &out, &errb), "%v", args)
	}
}

// TestHybridFlags runs generation in Test mode and from a plan file; the summary on stderr
// names the streaming layers.
func TestHybridFlags(t *testing.T) {
	dir := testutil.Testdata(t, "stories260K")
	plan := filepath.Join(t.TempDir(), "plan.json")
	require.NoError(t, os.WriteFile(plan, []byte(`{"num_hidden_layers": 5, "lazy_layers": [3, 1], "streaming_sink": 4, "streaming_window": 16, "source": "test"}`), 0o644))
	for _, tc := range []struct {
		args []string
		lazy string
	}{
		{[]string{"-plan", plan}, `lazy layers \[1 3\]`},
		{[]string{"-mode", "fixed", "-lazy", "0,2", "-window", "8"}, `lazy layers \[0 2\]`},
		{[]string{"-mode", "test", "-window", "8", "-sink", "2", "-last", "4"}, `lazy layers \[\d \d\]`}, // 2 of 5 layers
		{[]string{"-mode", "full"}, `lazy layers \[\]`},
	} {
		var out, errb bytes.Buffer
		args := append([]string{"-model", dir, "-prompt", "Once upon a time, there was a little girl named Lily", "-n", "20"}, tc.args...)
		require.NoError(t, run(context.Background(), args, &out, &errb), errb.String())
		require.Regexp(t, tc.lazy, errb.String(), "%v", tc.args)
	}
}
