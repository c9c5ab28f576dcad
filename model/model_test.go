package model_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lighttransfer/lighttransfer-go/internal/refcheck"
	"github.com/lighttransfer/lighttransfer-go/internal/testutil"
	"github.com/lighttransfer/lighttransfer-go/loader"
	"github.com/lighttransfer/lighttransfer-go/model"
)

// referenceDirs lists every checkpoint in testdata with a reference: the five tiny
// random-weight models and stories260K.
func referenceDirs(t *testing.T) []string {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join(testutil.Testdata(t, "reference"), "*", refcheck.CompactFile))
	require.NoError(t, err)
	var out []string
	for _, d := range dirs {
		out = append(out, filepath.Dir(d))
	}
	require.Len(t, out, 5)
	return append(out, testutil.Testdata(t, "stories260K"))
}

// TestReference checks every key of every reference: logits with full attention,
// lazy ratios, Test-mode choices and logits, fixed-mode logits. Tolerances are refcheck's:
// logits within 1e-5·(1+max|logit|) with every argmax equal, ratios within 1e-5.
func TestReference(t *testing.T) {
	ctx := context.Background()
	for _, dir := range referenceDirs(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			res, err := refcheck.Check(ctx, dir)
			require.NoError(t, err)
			require.NotEmpty(t, res)
			var keys []string
			for _, r := range res {
				t.Log(r)
				keys = append(keys, r.Key)
				require.Equal(t, refcheck.Pass, r.Status, r.String())
			}
			require.Contains(t, keys, "logits_full")
		})
	}
}

func loadModel(t testing.TB, dir string, opts ...model.LoadOption) *model.Model {
	t.Helper()
	m, err := model.Load(context.Background(), dir, opts...)
	require.NoError(t, err)
	return m
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

// TestGreedy256 decodes stories260K greedily from BOS through the incremental path and must
// reproduce Hugging Face's 256-token greedy continuation token for token.
func TestGreedy256(t *testing.T) {
	dir := testutil.Testdata(t, "stories260K")
	b, err := os.ReadFile(filepath.Join(dir, "greedy256.json"))
	require.NoError(t, err)
	var want []int32
	require.NoError(t, json.Unmarshal(b, &want))
	m := loadModel(t, dir)
	s, err := m.NewSession()
	require.NoError(t, err)
	ctx := context.Background()
	got := []int32{want[0]}
	for len(got) < len(want) {
		logits, err := s.Next(ctx, got[len(got)-1:])
		require.NoError(t, err)
		got = append(got, argmax(logits))
	}
	require.Equal(t, want, got)
}

func maxAbsDiff(a, b []float32) float64 {
	var d float64
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

// TestIncrementalEqualsFull runs the same tokens as one forward, as a prefill plus one-token
// steps, and in small chunks: all three must agree. Summation orders are the same per row,
// so the tolerance (1e-5 absolute on logits of size ~1) only absorbs the different ways the
// attention tiles split the keys.
func TestIncrementalEqualsFull(t *testing.T) {
	dir := testutil.Testdata(t, "reference", "llama-tiny")
	ref, err := refcheck.ReadReference(dir)
	require.NoError(t, err)
	m := loadModel(t, dir)
	ctx := context.Background()
	V := m.Config().VocabSize

	s, err := m.NewSession()
	require.NoError(t, err)
	full, err := s.Forward(ctx, ref.Tokens)
	require.NoError(t, err)
	want := full.Data().([]float32)

	s2, err := m.NewSession()
	require.NoError(t, err)
	pre, err := s2.Forward(ctx, ref.Tokens[:ref.P])
	require.NoError(t, err)
	got := append([]float32(nil), pre.Data().([]float32)...)
	for i := ref.P; i < len(ref.Tokens); i++ {
		row, err := s2.Next(ctx, ref.Tokens[i:i+1])
		require.NoError(t, err)
		got = append(got, row...)
	}
	require.Less(t, maxAbsDiff(want, got), 1e-5)

	s3, err := m.NewSession(model.WithChunkSize(5))
	require.NoError(t, err)
	ch, err := s3.Forward(ctx, ref.Tokens)
	require.NoError(t, err)
	require.Less(t, maxAbsDiff(want, ch.Data().([]float32)), 1e-5)
	require.Equal(t, len(ref.Tokens), s3.Pos())
	_ = V
}

// TestShardedCopy splits llama-tiny into two shards with an index file; the copy must pass the
// reference exactly as the original does.
func TestShardedCopy(t *testing.T) {
	src := testutil.Testdata(t, "reference", "llama-tiny")
	dst := t.TempDir()
	tensors, err := testutil.ReadSafetensors(filepath.Join(src, "model.safetensors"))
	require.NoError(t, err)
	half := len(tensors) / 2
	shards := [][]testutil.Tensor{tensors[:half], tensors[half:]}
	weightMap := map[string]string{}
	for i, sh := range shards {
		name := fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, len(shards))
		require.NoError(t, testutil.WriteSafetensors(filepath.Join(dst, name), sh))
		for _, tt := range sh {
			weightMap[tt.Name] = name
		}
	}
	idx, err := json.Marshal(map[string]any{"metadata": map[string]any{}, "weight_map": weightMap})
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dst, "model.safetensors.index.json"), idx, 0o644))
	for _, f := range []string{"config.json", refcheck.CompactFile} {
		require.NoError(t, testutil.CopyFile(filepath.Join(dst, f), filepath.Join(src, f)))
	}
	res, err := refcheck.Check(context.Background(), dst)
	require.NoError(t, err)
	for _, r := range res {
		require.Equal(t, refcheck.Pass, r.Status, r.String())
	}
}

// TestUntiedEqualsTied gives qwen2-tiny an explicit lm_head equal to its embedding and
// tie_word_embeddings false: the logits must be bit-identical to the tied original.
func TestUntiedEqualsTied(t *testing.T) {
	src := testutil.Testdata(t, "reference", "qwen2-tiny")
	dst := t.TempDir()
	tensors, err := testutil.ReadSafetensors(filepath.Join(src, "model.safetensors"))
	require.NoError(t, err)
	for _, tt := range tensors {
		if tt.Name == "model.embed_tokens.weight" {
			head := tt
			head.Name = "lm_head.weight"
			tensors = append(tensors, head)
			break
		}
	}
	require.NoError(t, testutil.WriteSafetensors(filepath.Join(dst, "model.safetensors"), tensors))
	cfg, err := os.ReadFile(filepath.Join(src, "config.json"))
	require.NoError(t, err)
	cfg = []byte(strings.Replace(string(cfg), `"tie_word_embeddings": true`, `"tie_word_embeddings": false`, 1))
	require.Contains(t, string(cfg), `"tie_word_embeddings": false`)
	require.NoError(t, os.WriteFile(filepath.Join(dst, "config.json"), cfg, 0o644))

	ref, err := refcheck.ReadReference(src)
	require.NoError(t, err)
	ctx := context.Background()
	var outs [][]float32
	for _, dir := range []string{src, dst} {
		m := loadModel(t, dir)
		s, err := m.NewSession()
		require.NoError(t, err)
		out, err := s.Forward(ctx, ref.Tokens)
		require.NoError(t, err)
		outs = append(outs, out.Data().([]float32))
	}
	require.Equal(t, outs[0], outs[1])
}

// TestBadInput covers user errors at the model level: each returns a sentinel error that
// names the offending value.
func TestBadInput(t *testing.T) {
	dir := testutil.Testdata(t, "reference", "llama-tiny")
	m := loadModel(t, dir)
	ctx := context.Background()
	s, err := m.NewSession()
	require.NoError(t, err)

	_, err = s.Forward(ctx, []int32{1, 999})
	require.ErrorIs(t, err, model.ErrToken)
	require.Contains(t, err.Error(), "999")
	_, err = s.Forward(ctx, []int32{-1})
	require.ErrorIs(t, err, model.ErrToken)

	long := make([]int32, m.Config().MaxPositions+1)
	_, err = s.Forward(ctx, long)
	require.ErrorIs(t, err, model.ErrContext)

	_, err = m.NewSession(model.WithMaxContext(-3))
	require.ErrorIs(t, err, model.ErrOption)

	// The rejected calls left the session untouched.
	require.Equal(t, 0, s.Pos())
	_, err = s.Forward(ctx, []int32{1, 2, 3})
	require.NoError(t, err)

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = s.Next(cctx, []int32{4})
	require.ErrorIs(t, err, context.Canceled)
}

// TestBrokenCheckpoints loads damaged copies of llama-tiny: a dropped tensor, a tensor of the
// wrong shape, an unsupported model_type and a truncated weight file.
func TestBrokenCheckpoints(t *testing.T) {
	src := testutil.Testdata(t, "reference", "llama-tiny")
	tensors, err := testutil.ReadSafetensors(filepath.Join(src, "model.safetensors"))
	require.NoError(t, err)
	cfg, err := os.ReadFile(filepath.Join(src, "config.json"))
	require.NoError(t, err)

	write := func(t *testing.T, ts []testutil.Tensor, config []byte) string {
		dir := t.TempDir()
		require.NoError(t, testutil.WriteSafetensors(filepath.Join(dir, "model.safetensors"), ts))
		require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), config, 0o644))
		return dir
	}
	t.Run("missing tensor", func(t *testing.T) {
		var ts []testutil.Tensor
		for _, tt := range tensors {
			if tt.Name != "model.layers.2.mlp.up_proj.weight" {
				ts = append(ts, tt)
			}
		}
		_, err := model.Load(context.Background(), write(t, ts, cfg))
		require.ErrorIs(t, err, model.ErrWeights)
		require.ErrorIs(t, err, loader.ErrNotFound)
		require.Contains(t, err.Error(), "model.layers.2.mlp.up_proj.weight")
	})
	t.Run("wrong shape", func(t *testing.T) {
		ts := append([]testutil.Tensor(nil), tensors...)
		for i, tt := range ts {
			if tt.Name == "model.layers.1.self_attn.k_proj.weight" {
				tt.Shape = []int{tt.Shape[1], tt.Shape[0]}
				ts[i] = tt
			}
		}
		_, err := model.Load(context.Background(), write(t, ts, cfg))
		require.ErrorIs(t, err, model.ErrWeights)
		require.Contains(t, err.Error(), "model.layers.1.self_attn.k_proj.weight")
	})
	t.Run("unsupported model_type", func(t *testing.T) {
		bad := []byte(strings.Replace(string(cfg), `"model_type": "llama"`, `"model_type": "gpt2"`, 1))
		_, err := model.Load(context.Background(), write(t, tensors, bad))
		require.ErrorIs(t, err, loader.ErrUnsupported)
		require.Contains(t, err.Error(), "gpt2")
	})
	t.Run("truncated", func(t *testing.T) {
		dir := write(t, tensors, cfg)
		p := filepath.Join(dir, "model.safetensors")
		fi, err := os.Stat(p)
		require.NoError(t, err)
		require.NoError(t, os.Truncate(p, fi.Size()-100))
		_, err = model.Load(context.Background(), dir)
		require.ErrorIs(t, err, loader.ErrFormat)
		require.Contains(t, err.Error(), "model.safetensors")
	})
	t.Run("missing dir", func(t *testing.T) {
		_, err := model.Load(context.Background(), filepath.Join(t.TempDir(), "nope"))
		require.Error(t, err)
		require.True(t, errors.Is(err, loader.ErrNotFound) || errors.Is(err, os.ErrNotExist), err.Error())
	})
}

// TestConcurrentSessions runs sessions of one shared Model from several goroutines; each must
// produce the logits a lone session produces (run under -race).
func TestConcurrentSessions(t *testing.T) {
	dir := testutil.Testdata(t, "stories260K")
	ref, err := refcheck.ReadReference(dir)
	require.NoError(t, err)
	m := loadModel(t, dir)
	ctx := context.Background()
	toks := ref.Tokens[:64]
	s, err := m.NewSession()
	require.NoError(t, err)
	want, err := s.Forward(ctx, toks)
	require.NoError(t, err)

	var wg sync.WaitGroup
	errs := make([]error, 4)
	for g := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := m.NewSession()
			if err != nil {
				errs[g] = err
				return
			}
			defer s.Close()
			got, err := s.Forward(ctx, toks)
			if err != nil {
				errs[g] = err
				return
			}
			if d := maxAbsDiff(want.Data().([]float32), got.Data().([]float32)); d != 0 {
				errs[g] = fmt.Errorf("goroutine %d: logits differ by %g", g, d)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
}

// TestSessionClose: a closed session releases its cache, reports zero usage and refuses work.
func TestSessionClose(t *testing.T) {
	m := loadModel(t, testutil.Testdata(t, "stories260K"))
	s, err := m.NewSession()
	require.NoError(t, err)
	_, err = s.Next(context.Background(), []int32{1, 403})
	require.NoError(t, err)
	require.Positive(t, s.Usage().Bytes)
	s.Close()
	require.Zero(t, s.Usage().Bytes)
	_, err = s.Next(context.Background(), []int32{5})
	require.ErrorIs(t, err, model.ErrClosed)
	_, err = s.Clone()
	require.ErrorIs(t, err, model.ErrClosed)
	require.ErrorIs(t, s.MakeStreaming(1), model.ErrClosed)
}
