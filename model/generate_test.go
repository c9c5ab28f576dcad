package model_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lighttransfer/lighttransfer-go/internal/testutil"
	"github.com/lighttransfer/lighttransfer-go/loader/tokenizer"
	"github.com/lighttransfer/lighttransfer-go/model"
)

func stories(t testing.TB) *model.Model {
	return loadModel(t, testutil.Testdata(t, "stories260K"))
}

// TestGenerateGreedyFromBOS: an empty prompt starts from BOS, and greedy decoding follows the
// reference story.
func TestGenerateGreedyFromBOS(t *testing.T) {
	m := stories(t)
	res, err := m.Generate(context.Background(), "", model.WithMaxTokens(40))
	require.NoError(t, err)
	require.Equal(t, model.FinishLength, res.Finish)
	require.Equal(t, 1, res.PromptTokens)
	require.Equal(t, 40, res.GeneratedTokens)
	require.True(t, strings.HasPrefix(res.Text, "Once upon a time"), res.Text)
	require.Positive(t, res.KV.Bytes)
}

func TestSeededSamplingReproducible(t *testing.T) {
	m := stories(t)
	ctx := context.Background()
	gen := func(seed uint64) string {
		res, err := m.Generate(ctx, "Once upon a time", model.WithMaxTokens(60),
			model.WithSampling(model.Sampling{Temperature: 1.0, TopK: 40, TopP: 0.95, MinP: 0.01, RepetitionPenalty: 1.1, Seed: seed}))
		require.NoError(t, err)
		return res.Text
	}
	a, b, c := gen(7), gen(7), gen(8)
	require.Equal(t, a, b)
	require.NotEqual(t, a, c, "different seeds gave the same 60 sampled tokens")
}

func TestStopStringsAndStream(t *testing.T) {
	m := stories(t)
	var streamed strings.Builder
	res, err := m.Generate(context.Background(), "Once upon a time", model.WithMaxTokens(200),
		model.WithStop("Lily."),
		model.WithStream(func(tk model.Token) error { streamed.WriteString(tk.Text); return nil }))
	require.NoError(t, err)
	require.Equal(t, model.FinishStop, res.Finish)
	require.Equal(t, ", there was a little girl named ", res.Text)
	require.Equal(t, res.Text, streamed.String())

	// The callback ends generation cleanly with ErrStop.
	n := 0
	res, err = m.Generate(context.Background(), "Once", model.WithMaxTokens(200),
		model.WithStream(func(model.Token) error {
			n++
			if n == 5 {
				return model.ErrStop
			}
			return nil
		}))
	require.NoError(t, err)
	require.Equal(t, model.FinishCallback, res.Finish)
	require.Equal(t, 5, res.GeneratedTokens)

	// Any other callback error is returned.
	boom := errors.New("boom")
	_, err = m.Generate(context.Background(), "Once", model.WithStream(func(model.Token) error { return boom }))
	require.ErrorIs(t, err, boom)
}

// TestCancel cancels a long generation from another goroutine; Generate must return within a
// decode step or so with the tokens generated so far and the context's error.
func TestCancel(t *testing.T) {
	m := stories(t)
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	var once sync.Once
	done := make(chan struct{})
	var res model.Result
	var err error
	go func() {
		defer close(done)
		res, err = m.Generate(ctx, "Once", model.WithMaxTokens(400), model.WithIgnoreEOS(),
			model.WithStream(func(tk model.Token) error {
				if tk.Index == 3 {
					once.Do(func() { close(started) })
				}
				return nil
			}))
	}()
	<-started
	cancel()
	<-done
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, model.FinishCanceled, res.Finish)
	require.Less(t, res.GeneratedTokens, 400)
	require.GreaterOrEqual(t, res.GeneratedTokens, 4)
}

// TestConcurrentGenerate: 8 goroutines sampling from one Model give the outputs of sequential
// runs with the same seeds.
func TestConcurrentGenerate(t *testing.T) {
	m := stories(t)
	ctx := context.Background()
	opts := func(seed int) []model.GenerateOption {
		return []model.GenerateOption{model.WithMaxTokens(30),
			model.WithSampling(model.Sampling{Temperature: 0.8, Seed: uint64(seed)})}
	}
	want := make([]string, 8)
	for i := range want {
		res, err := m.Generate(ctx, "Once upon a time", opts(i)...)
		require.NoError(t, err)
		want[i] = res.Text
	}
	got := make([]string, 8)
	errs := make([]error, 8)
	var wg sync.WaitGroup
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := m.Generate(ctx, "Once upon a time", opts(i)...)
			got[i], errs[i] = res.Text, err
		}()
	}
	wg.Wait()
	for i := range got {
		require.NoError(t, errs[i])
	}
	require.Equal(t, want, got)
}

func TestGenerateBadInput(t *testing.T) {
	m := stories(t)
	ctx := context.Background()
	for name, s := range map[string]model.Sampling{
		"negative temperature": {Temperature: -1},
		"NaN temperature":      {Temperature: math.NaN()},
		"top-p above 1":        {Temperature: 1, TopP: 1.5},
		"negative top-p":       {Temperature: 1, TopP: -0.1},
		"negative top-k":       {TopK: -2},
		"min-p above 1":        {MinP: 2},
	} {
		_, err := m.Generate(ctx, "Once", model.WithSampling(s))
		require.ErrorIs(t, err, model.ErrOption, name)
	}
	_, err := m.Generate(ctx, "Once", model.WithMaxTokens(0))
	require.ErrorIs(t, err, model.ErrOption)
	_, err = m.Generate(ctx, "Once", model.WithStop(""))
	require.ErrorIs(t, err, model.ErrOption)
	_, err = m.Generate(ctx, "bad \xff utf8")
	require.ErrorIs(t, err, tokenizer.ErrInvalidUTF8)
	require.Contains(t, err.Error(), "byte offset 4")
	_, err = m.Generate(ctx, strings.Repeat("Once upon a time ", 300))
	require.ErrorIs(t, err, model.ErrContext)

	// Generation stops at the end of the context window rather than failing.
	res, err := m.Generate(ctx, "Once", model.WithMaxTokens(1000), model.WithIgnoreEOS(),
		model.WithSessionOptions(model.WithMaxContext(20)))
	require.NoError(t, err)
	require.Equal(t, model.FinishContext, res.Finish)
	_ = time.Second
}
