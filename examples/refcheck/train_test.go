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

// TestRefcheckTrain runs -train on the repository's copy of the PyTorch training step: three
// lines, all pass.
func TestRefcheckTrain(t *testing.T) {
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"-train", "../../testdata/train-stories260K", "-train-model", "../../testdata/stories260K"}, &out, &errb)
	require.NoError(t, err, out.String())
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 3)
	for i, key := range []string{"train.loss", "train.grad", "train.adamw"} {
		require.Contains(t, lines[i], key+" pass max_abs_err=")
	}
}

// TestRefcheckTrainDetectsBadReference raises the reference loss by 1e-4 relative: train.loss
// must FAIL and the command return an error.
func TestRefcheckTrainDetectsBadReference(t *testing.T) {
	src := "../../testdata/train-stories260K"
	dst := t.TempDir()
	for _, f := range []string{"grads.safetensors", "after_adamw_delta.safetensors"} {
		require.NoError(t, testutil.CopyFile(filepath.Join(dst, f), filepath.Join(src, f)))
	}
	b, err := os.ReadFile(filepath.Join(src, "train_step.json"))
	require.NoError(t, err)
	b = bytes.Replace(b, []byte(`"loss": 0.48136934638023376`), []byte(`"loss": 0.4814174833`), 1)
	require.NoError(t, os.WriteFile(filepath.Join(dst, "train_step.json"), b, 0o644))
	var out, errb bytes.Buffer
	require.Error(t, run(context.Background(), []string{"-train", dst, "-train-model", "../../testdata/stories260K"}, &out, &errb))
	require.Contains(t, out.String(), "train.loss FAIL")
	require.Contains(t, out.String(), "train.grad pass")
}
