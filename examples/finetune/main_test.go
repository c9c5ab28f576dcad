package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lighttransfer/lighttransfer-go/model"
	"github.com/lighttransfer/lighttransfer-go/train"
)

const (
	stories = "../../testdata/stories260K"
	greedy  = "../../testdata/train-stories260K/greedy256.json"
)

// TestEval reproduces the starting point: fixed-mode NLL of greedy256 rows 128.. with
// lazy layers [2 4], sink 4, window 16 is 0.6103, full attention 0.4239.
func TestEval(t *testing.T) {
	var out, errb bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"-eval", greedy, "-model", stories, "-lazy", "2,4", "-sink", "4",
		"-window", "16", "-prompt-len", "128", "-json"}, &out, &errb))
	var r map[string]float64
	require.NoError(t, json.Unmarshal(out.Bytes(), &r))
	require.InDelta(t, 0.6103, r["fixed_nll"], 1e-4)
	require.InDelta(t, 0.4239, r["full_nll"], 1e-4)
}

// TestEvalSet scores a directory of texts and a single file against a base checkpoint: with
// the model as its own base every text recovers exactly nothing, the mean is the mean of the
// texts, and greedy256 keeps the numbers TestEval checks.
func TestEvalSet(t *testing.T) {
	var out, errb bytes.Buffer
	dir := "../../testdata/train-stories260K/stories-test"
	require.NoError(t, run(context.Background(), []string{"-eval", dir + "," + greedy, "-model", stories, "-base", stories,
		"-lazy", "2,4", "-sink", "4", "-window", "16", "-prompt-len", "128", "-json"}, &out, &errb))
	var r struct {
		Texts []textScore
		Mean  textScore
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &r), out.String())
	require.Len(t, r.Texts, 7) // six stories, then greedy256
	var fixed float64
	for _, x := range r.Texts {
		require.NotNil(t, x.Recovered, x.File)
		require.Zero(t, *x.Recovered, x.File)
		require.Equal(t, x.Fixed, *x.BaseFixed, x.File)
		require.Greater(t, x.Fixed, x.Full, x.File) // the streaming mask costs every text something
		fixed += x.Fixed / 7
	}
	require.InDelta(t, fixed, r.Mean.Fixed, 1e-12)
	require.Equal(t, greedy, r.Texts[6].File)
	require.InDelta(t, 0.6103, r.Texts[6].Fixed, 1e-4)
	require.InDelta(t, 0.4239, r.Texts[6].Full, 1e-4)

	// A text the window covers whole costs the base nothing: no share is printed, no NaN.
	short := filepath.Join(t.TempDir(), "short.json")
	require.NoError(t, os.WriteFile(short, []byte("[1, 403, 261, 270, 304, 285]"), 0o644))
	out.Reset()
	require.NoError(t, run(context.Background(), []string{"-eval", short, "-model", stories, "-base", stories,
		"-lazy", "2,4", "-sink", "4", "-window", "16", "-prompt-len", "2", "-json"}, &out, &errb))
	require.NotContains(t, out.String(), "recovered", out.String())

	// Token ids outside the vocabulary are an error naming the file.
	bad := filepath.Join(t.TempDir(), "bad.json")
	require.NoError(t, os.WriteFile(bad, []byte("[1, 99999, 3]"), 0o644))
	err := run(context.Background(), []string{"-eval", bad, "-model", stories, "-lazy", "2,4", "-prompt-len", "1"}, &out, &errb)
	require.ErrorContains(t, err, "bad.json")

	empty := t.TempDir()
	err = run(context.Background(), []string{"-eval", empty, "-model", stories, "-lazy", "2,4", "-prompt-len", "128"}, &out, &errb)
	require.ErrorContains(t, err, "no *.json token files")
	err = run(context.Background(), []string{"-eval", filepath.Join(empty, "missing.json"), "-model", stories, "-lazy", "2,4", "-prompt-len", "128"}, &out, &errb)
	require.ErrorContains(t, err, "missing.json")
}

// TestStoryTokens: every story's token file is its text encoded by stories260K's tokenizer
// (BOS first, surrounding whitespace trimmed), so the texts and the scored ids cannot drift apart.
func TestStoryTokens(t *testing.T) {
	m, err := model.Load(context.Background(), stories, model.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	defer m.Close()
	txts, err := filepath.Glob("../../testdata/train-stories260K/stories-*/*.txt")
	require.NoError(t, err)
	require.Len(t, txts, 64)
	for _, p := range txts {
		b, err := os.ReadFile(p)
		require.NoError(t, err)
		want, err := m.Tokenizer().Encode(strings.TrimSpace(string(b)), true)
		require.NoError(t, err)
		got, err := readTokens(strings.TrimSuffix(p, ".txt") + ".json")
		require.NoError(t, err)
		require.Equal(t, want, got, p)
		require.Greater(t, len(got), 256, p) // long enough for rows 128.. to reach past the window
	}
}

// TestStoryCorpus: the training stories parse, and none shares a run of 16 tokens with an
// evaluation text (the development, held-back and held-out stories, the unseen story, the
// self-samples, greedy256), so training on them never trains on what is scored.
func TestStoryCorpus(t *testing.T) {
	m, err := model.Load(context.Background(), stories, model.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	defer m.Close()
	const corpus = "../../testdata/train-stories260K/stories-train.jsonl"
	f, err := os.Open(corpus)
	require.NoError(t, err)
	defer f.Close()
	recs, err := train.ParseJSONL(f, corpus)
	require.NoError(t, err)
	require.Len(t, recs, 609)
	exs, err := train.Tokenize(recs, m.Tokenizer(), corpus)
	require.NoError(t, err)
	evals, err := filepath.Glob("../../testdata/train-stories260K/*.json")
	require.NoError(t, err)
	more, err := filepath.Glob("../../testdata/train-stories260K/stories-*/*.json")
	require.NoError(t, err)
	evals = append(evals, more...)
	require.GreaterOrEqual(t, len(evals), 68)
	var texts [][]int32
	for _, p := range evals {
		if filepath.Base(p) == "train_step.json" {
			continue
		}
		toks, err := readTokens(p)
		require.NoError(t, err, p)
		texts = append(texts, toks)
	}
	ng := train.NewNGrams(16, texts...)
	for i, e := range exs {
		require.Greater(t, len(e.Tokens), 256, "story %d", i+1) // -truncate keeps rows past the window
		require.False(t, ng.Overlaps(e.Tokens), "story %d shares 16 tokens with an evaluation text", i+1)
	}
}

// TestSmoke trains a few steps on a handful of sampled sequences and checks the written
// checkpoint opens in fixed mode and scores no worse than NaN; the progress lines name
// step, loss, tokens/s and ETA.
func TestSmoke(t *testing.T) {
	out := filepath.Join(t.TempDir(), "ft")
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"-model", stories, "-lazy", "2,4", "-sink", "4", "-window", "16", "-out", out,
		"-samples", "5", "-seq-len", "48", "-batch", "2", "-steps", "3", "-warmup", "1", "-eval-every", "2",
		"-save-every", "2", "-watch", greedy, "-prompt-len", "128", "-score-from", "20", "-json"}, &stdout, &stderr)
	require.NoError(t, err, stderr.String())
	require.Contains(t, stderr.String(), "step 3/3 loss ")
	require.Contains(t, stderr.String(), " tok/s ")
	require.Contains(t, stderr.String(), " eta ")
	require.Contains(t, stderr.String(), " greedy256 ")
	var sum map[string]any
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &sum), stdout.String())
	require.EqualValues(t, 3, sum["steps"])
	m, err := model.Load(context.Background(), out, model.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	defer m.Close()
	require.Equal(t, []int{2, 4}, m.Config().LazyLayers)
	require.Equal(t, 16, m.Config().StreamingWindow)
	require.DirExists(t, out+".state")

	// Resuming from the state continues to the new step count.
	stdout.Reset()
	stderr.Reset()
	err = run(context.Background(), []string{"-model", stories, "-lazy", "2,4", "-sink", "4", "-window", "16", "-out", out,
		"-samples", "5", "-seq-len", "48", "-batch", "2", "-steps", "4", "-warmup", "1", "-resume", out + ".state"}, &stdout, &stderr)
	require.NoError(t, err, stderr.String())
	require.Contains(t, stderr.String(), "step 3/4 ")
	require.NotContains(t, stderr.String(), "step 2/4 ")
}

// TestMixData: -data with -samples trains on both, each data sequence -data-repeat times;
// the held-out share comes from the samples (or, without them, from the data before it is
// repeated, so no copy of a held-out sequence is trained on); -truncate cuts long texts.
func TestMixData(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "d.jsonl")
	long := strings.Repeat("Once upon a time there was a cat. ", 8)
	require.NoError(t, os.WriteFile(data, []byte(`{"text": "`+long+`"}`+"\n"+`{"text": "The dog ran home."}`+"\n"+`{"text": "`+long+`"}`+"\n"), 0o644))
	base := []string{"-model", stories, "-lazy", "2,4", "-sink", "4", "-window", "16", "-seq-len", "48", "-batch", "2",
		"-steps", "1", "-warmup", "0", "-data", data, "-data-repeat", "2", "-truncate"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		// 4 samples, 1 held out; 3 data sequences (the short text packed after a long one
		// does not fit: each long text fills its own) twice.
		{[]string{"-samples", "4"}, "training 9 sequences of 48 tokens (1 held out)"},
		// no samples: 1 of the 3 data sequences held out, the other 2 twice.
		{nil, "training 4 sequences of 48 tokens (1 held out)"},
		{[]string{"-loss", "ce", "-samples", "2", "-data-repeat", "3"}, "training 10 sequences of 48 tokens (1 held out)"},
	} {
		var stdout, stderr bytes.Buffer
		args := append(append(append([]string{}, base...), tc.args...), "-out", filepath.Join(t.TempDir(), "ft"))
		require.NoError(t, run(context.Background(), args, &stdout, &stderr), "%v: %s", tc.args, stderr.String())
		require.Contains(t, stderr.String(), tc.want, "%v", tc.args)
		require.NotContains(t, stderr.String(), "sampled 0/", "%v", tc.args)
	}
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"-model", stories, "-lazy", "2", "-seq-len", "48", "-steps", "1", "-data", data,
		"-out", filepath.Join(dir, "out")}, &stdout, &stderr)
	require.ErrorContains(t, err, "d.jsonl:1: ")
	require.ErrorContains(t, err, "-truncate")
	require.ErrorIs(t, err, train.ErrData)
}

// TestBadInput: each misuse is an error naming what is wrong, and no checkpoint is written.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	jsonl := func(name, body string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
		return p
	}
	base := []string{"-model", stories, "-sink", "4", "-window", "16", "-steps", "1", "-samples", "3", "-seq-len", "32", "-batch", "1"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-lazy", "2,5"}, "lazy layer 5 out of range [0, 5)"},
		{[]string{"-lazy", "2,2"}, "lazy layer 2 listed twice"},
		{[]string{"-lazy", "2", "-window", "0"}, "window 0 must be > 0"},
		{[]string{"-lazy", "2,x"}, `lazy layer "x" is not an integer`},
		{[]string{"-lazy", "2", "-data", jsonl("empty.jsonl", "")}, "empty.jsonl: no records"},
		{[]string{"-lazy", "2", "-data", jsonl("bad.jsonl", `{"text": "a b c"}`+"\n"+`{"text": `)}, "bad.jsonl:2: not a JSON object"},
		{[]string{"-lazy", "2", "-data", jsonl("blank.jsonl", `{"text": "a b c"}`+"\n\n")}, "blank.jsonl:2: empty line"},
		{[]string{"-lazy", "2", "-data", jsonl("long.jsonl", `{"text": "`+strings.Repeat("Once upon a time. ", 20)+`"}`)}, "long.jsonl:1: "},
		{[]string{"-lazy", "2", "-seq-len", "600"}, "-seq-len 600: want 2..512"},
		{[]string{"-lazy", "2", "-lr", "1e9", "-clip", "0", "-warmup", "0", "-loss", "ce", "-steps", "30"}, "non-finite loss at step "},
		{[]string{"-lazy", "2", "-loss", "mse"}, `-loss "mse"`},
		{[]string{"-lazy", "2", "-data-repeat", "0"}, "-data-repeat 0: want"},
		{[]string{"-lazy", "2", "-data", jsonl("ok.jsonl", `{"text": "a b c"}`) + ",missing.jsonl"}, "missing.jsonl"},
	} {
		out := filepath.Join(dir, "out")
		args := append(append(append([]string{}, base...), tc.args...), "-out", out)
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), args, &stdout, &stderr)
		require.Error(t, err, "%v", tc.args)
		require.ErrorContains(t, err, tc.want, "%v", tc.args)
		require.NoDirExists(t, out, "%v", tc.args)
	}
}
