package train

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lighttransfer/lighttransfer-go/model"
)

const stories = "../testdata/stories260K"

var testMask = Mask{Lazy: []int{2, 4}, Sink: 4, Window: 16}

func loadModel(t testing.TB, dir string) *model.Model {
	m, err := model.Load(context.Background(), dir, model.WithLogger(slog.New(slog.DiscardHandler)))
	require.NoError(t, err)
	t.Cleanup(m.Close)
	return m
}

// storiesWeights loads stories260K's parameters.
func storiesWeights(t testing.TB) *Weights {
	w, err := LoadWeights(stories)
	require.NoError(t, err)
	return w
}

func TestMaskValidate(t *testing.T) {
	for _, tc := range []struct {
		m    Mask
		want string
	}{
		{Mask{Lazy: []int{5}, Window: 16}, "lazy layer 5 out of range [0, 5)"},
		{Mask{Lazy: []int{-1}, Window: 16}, "lazy layer -1 out of range"},
		{Mask{Lazy: []int{2, 2}, Window: 16}, "lazy layer 2 listed twice"},
		{Mask{Lazy: []int{2}, Window: 0}, "window 0 must be > 0"},
		{Mask{Lazy: []int{2}, Window: -3}, "window -3 must be > 0"},
		{Mask{Lazy: []int{2}, Sink: -1, Window: 4}, "sink -1 must be >= 0"},
	} {
		err := tc.m.Validate(5)
		require.ErrorIs(t, err, ErrConfig)
		require.ErrorContains(t, err, tc.want)
	}
	require.NoError(t, testMask.Validate(5))
	_, err := ParseLayers("2,x")
	require.ErrorIs(t, err, ErrConfig)
	l, err := ParseLayers(" 2, 4")
	require.NoError(t, err)
	require.Equal(t, []int{2, 4}, l)
}

// TestAdamWMatchesFloat64 runs three AdamW steps (and a clipped gradient) against a float64
// transcription of torch.optim.AdamW.
func TestAdamWMatchesFloat64(t *testing.T) {
	w := &Weights{Params: []*Param{{Name: "p", Shape: []int{4}, Data: []float32{0.5, -1, 2, 0}}}}
	h := AdamW{LR: 0.01, WeightDecay: 0.1}
	st := newAdamState(w)
	p := []float64{0.5, -1, 2, 0}
	m, v := make([]float64, 4), make([]float64, 4)
	grads := [][]float64{{0.1, -0.2, 3, 1e-9}, {0.3, 0.1, -2, 0}, {-0.5, 0.4, 1, 2}}
	for s, g := range grads {
		g32 := [][]float32{{float32(g[0]), float32(g[1]), float32(g[2]), float32(g[3])}}
		adamWStep(w, g32, st, h, h.LR, nil)
		b1, b2 := 0.9, 0.999
		for i := range p {
			p[i] *= 1 - h.LR*h.WeightDecay
			m[i] = b1*m[i] + (1-b1)*g[i]
			v[i] = b2*v[i] + (1-b2)*g[i]*g[i]
			mh := m[i] / (1 - math.Pow(b1, float64(s+1)))
			vh := v[i] / (1 - math.Pow(b2, float64(s+1)))
			p[i] -= h.LR * mh / (math.Sqrt(vh) + 1e-8)
		}
		for i := range p {
			require.InDelta(t, p[i], float64(w.Params[0].Data[i]), 1e-6, "step %d param %d", s, i)
		}
	}
	g := [][]float32{{3, 4}}
	require.InDelta(t, 5, clip(g, 1), 1e-9)
	require.InDelta(t, 1, globalNorm(g), 1e-5)
	require.InDelta(t, 1, clip(g, -1), 1e-5, "no clipping")
}

func TestSchedule(t *testing.T) {
	s := Schedule{Peak: 1, Warmup: 4, Total: 14, MinRatio: 0.1}
	require.InDelta(t, 0.25, s.At(0), 1e-12)
	require.InDelta(t, 1, s.At(3), 1e-12)
	require.InDelta(t, 1, s.At(4), 1e-12)
	require.InDelta(t, 0.55, s.At(9), 1e-12)
	require.InDelta(t, 0.1, s.At(14), 1e-12)
	require.InDelta(t, 0.1, s.At(20), 1e-12)
}

// tinyRun trains stories260K briefly on a few sampled sequences of 128 tokens (lazy [2 4],
// sink 2, window 8, so the mask matters at that length).
func tinyRun(t *testing.T, opts Options) (*Weights, *model.Model, []Sequence, *Result, error) {
	t.Helper()
	ctx := context.Background()
	m := loadModel(t, stories)
	w, err := LoadWeights(stories)
	require.NoError(t, err)
	seqs, err := Sample(ctx, storiesWeights(t), SampleOptions{N: 6, T: 128, Seed: 9})
	require.NoError(t, err)
	if opts.Mask.Lazy == nil {
		opts.Mask = Mask{Lazy: []int{2, 4}, Sink: 2, Window: 8}
	}
	if opts.Batch == 0 {
		opts.Batch = 2
	}
	res, err := Run(ctx, w, m, seqs[2:], seqs[:2], opts)
	return w, m, seqs, res, err
}

// TestRunImproves: a few distillation steps lower the held-out fixed-mask NLL, and the
// result holds the best weights with a curve of every step.
func TestRunImproves(t *testing.T) {
	_, _, _, res, err := tinyRun(t, Options{Steps: 8, EvalEvery: 2, Warmup: 3, AdamW: AdamW{LR: 1e-4}, Patience: -1})
	require.NoError(t, err)
	require.Len(t, res.Curve, 8)
	require.Less(t, res.BestVal, res.StartVal, "validation NLL improves")
	require.Positive(t, res.Curve[7].TokensPerSec)
	require.False(t, math.IsNaN(res.Curve[3].Val))
	require.True(t, math.IsNaN(res.Curve[2].Val))
}

// TestTeacherCacheSameResult: keeping the teacher's probabilities (all, part or none of the
// training sequences) changes nothing in the training curve or the weights (4 sequences,
// batch 2: every sequence is used several times over 6 steps).
func TestTeacherCacheSameResult(t *testing.T) {
	var curves [][]float64
	var weights []*Weights
	for _, budget := range []int64{-1, 4 * 128 * 512 * 2, 0} { // none, 2 of 4, all (default)
		w, _, _, res, err := tinyRun(t, Options{Steps: 6, EvalEvery: 3, AdamW: AdamW{LR: 1e-3}, Patience: -1, TeacherCache: budget})
		require.NoError(t, err)
		var c []float64
		for _, p := range res.Curve {
			c = append(c, p.Loss, p.GradNorm)
		}
		curves, weights = append(curves, c), append(weights, w)
	}
	for i := 1; i < len(curves); i++ {
		require.Equal(t, curves[0], curves[i], "losses and gradient norms")
		for j, p := range weights[0].Params {
			require.Equal(t, p.Data, weights[i].Params[j].Data, p.Name)
		}
	}
}

// TestRunAccumulationEqualsBigBatch: two micro-batches of 2 with accumulation give the loss
// and gradient norm of one batch of the same 4 sequences (CE loss, every sequence has the
// same number of scored rows, so the mean of the two means is the mean).
func TestRunAccumulationEqualsBigBatch(t *testing.T) {
	ctx := context.Background()
	seqs, err := Sample(ctx, storiesWeights(t), SampleOptions{N: 4, T: 24, Seed: 3})
	require.NoError(t, err)
	run := func(batch, accum int) Progress {
		w, err := LoadWeights(stories)
		require.NoError(t, err)
		res, err := Run(ctx, w, nil, seqs, nil, Options{Mask: testMask, Loss: CrossEntropy, Batch: batch, Accum: accum,
			Steps: 1, ClipNorm: -1, Seed: 5})
		require.NoError(t, err)
		return res.Curve[0]
	}
	a, b := run(4, 1), run(2, 2)
	require.InEpsilon(t, a.Loss, b.Loss, 1e-6)
	require.InEpsilon(t, a.GradNorm, b.GradNorm, 1e-5)
}

// TestRunNonFinite: an exploding learning rate makes the loss non-finite; Run stops with
// ErrNonFinite naming the step, and the state saved before it stays finite.
func TestRunNonFinite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	saved := 0
	_, _, _, _, err := tinyRun(t, Options{Steps: 50, AdamW: AdamW{LR: 1e6}, Warmup: -1, ClipNorm: -1, Loss: CrossEntropy, SaveEvery: 1,
		Save: func(st *State) error { saved = st.Step; return SaveState(dir, st) }})
	require.ErrorIs(t, err, ErrNonFinite)
	require.ErrorContains(t, err, "at step ")
	require.Positive(t, saved)
	w, err := LoadWeights(stories)
	require.NoError(t, err)
	st, err := LoadState(dir, w)
	require.NoError(t, err)
	for _, p := range st.Weights.Params {
		for _, x := range p.Data {
			require.False(t, math.IsNaN(float64(x)) || math.IsInf(float64(x), 0), p.Name)
		}
	}
}

// TestRunBadInput: a sequence longer than the context, a wrong mask and empty data are
// errors, never panics.
func TestRunBadInput(t *testing.T) {
	ctx := context.Background()
	m := loadModel(t, stories)
	w, err := LoadWeights(stories)
	require.NoError(t, err)
	long := Sequence{Tokens: make([]int32, 513), Targets: make([]int32, 513)}
	_, err = Run(ctx, w, m, []Sequence{long, long}, nil, Options{Mask: testMask, Batch: 1})
	require.ErrorIs(t, err, ErrConfig)
	require.ErrorContains(t, err, "sequence length 513 exceeds the model's context of 512")
	_, err = Run(ctx, w, m, []Sequence{{Tokens: []int32{1, 2}, Targets: []int32{2, -1}}}, nil, Options{Mask: Mask{Lazy: []int{2, 2}, Window: 4}})
	require.ErrorIs(t, err, ErrConfig)
	_, err = Run(ctx, w, m, nil, nil, Options{Mask: testMask})
	require.ErrorIs(t, err, ErrData)
	_, err = Run(ctx, w, m, []Sequence{{Tokens: []int32{1, 900}, Targets: []int32{900, -1}}}, nil, Options{Mask: testMask, Batch: 1})
	require.ErrorIs(t, err, ErrData)
	_, err = OneStep(w, testMask, make([]int32, 600), 0, AdamW{LR: 1e-3})
	require.ErrorIs(t, err, ErrConfig)
}

// TestCheckpointRoundTrip: the written directory opens with model.Load in fixed mode with the
// training mask, its logits equal the training graph's, and nothing temporary is left.
func TestCheckpointRoundTrip(t *testing.T) {
	w, _, seqs, res, err := tinyRun(t, Options{Steps: 2, Patience: -1})
	require.NoError(t, err)
	_ = w
	out := filepath.Join(t.TempDir(), "ft")
	require.NoError(t, SaveCheckpoint(out, stories, res.Weights, testMask))
	require.NoError(t, SaveCheckpoint(out, stories, res.Weights, testMask), "replacing an existing checkpoint")
	ents, err := os.ReadDir(filepath.Dir(out))
	require.NoError(t, err)
	require.Len(t, ents, 1, "no temporary directory left")
	for _, f := range []string{"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "NOTICE"} {
		require.FileExists(t, filepath.Join(out, f))
	}
	m := loadModel(t, out)
	require.Equal(t, []int{2, 4}, m.Config().LazyLayers)
	s, err := m.NewSession()
	require.NoError(t, err)
	require.Equal(t, model.ModeFixed, s.Mode())
	require.Equal(t, []int{2, 4}, s.Lazy())
	require.Equal(t, 16, s.Window())
	// Fixed-mode NLL from the inference engine equals the training graph's loss.
	tok := seqs[0].Tokens
	nll, err := NLL(context.Background(), m, tok, 1, testMask)
	require.NoError(t, err)
	n, err := newNet(res.Weights, testMask, 1, len(tok), false, false)
	require.NoError(t, err)
	loss, err := n.run(makeBatch([]Sequence{seqs[0]}, 0, 1, nil))
	require.NoError(t, err)
	require.InDelta(t, nll, loss, 1e-5)

	// A bad mask writes nothing.
	bad := filepath.Join(t.TempDir(), "bad")
	require.ErrorIs(t, SaveCheckpoint(bad, stories, res.Weights, Mask{Lazy: []int{9}, Window: 4}), ErrConfig)
	require.NoDirExists(t, bad)
}

// TestResume: training 4 steps equals 2 steps, a saved state, and 2 more steps resumed.
func TestResume(t *testing.T) {
	ctx := context.Background()
	m := loadModel(t, stories)
	seqs, err := Sample(ctx, storiesWeights(t), SampleOptions{N: 4, T: 24, Seed: 3})
	require.NoError(t, err)
	dir := filepath.Join(t.TempDir(), "state")
	opts := Options{Mask: testMask, Batch: 2, Steps: 4, Seed: 2, Patience: -1}
	full, err := LoadWeights(stories)
	require.NoError(t, err)
	_, err = Run(ctx, full, m, seqs, nil, opts)
	require.NoError(t, err)

	half, err := LoadWeights(stories)
	require.NoError(t, err)
	o := opts
	o.SaveEvery, o.Save = 2, func(st *State) error {
		if st.Step == 2 {
			return SaveState(dir, st)
		}
		return nil
	}
	_, err = Run(ctx, half, m, seqs, nil, o)
	require.NoError(t, err)
	w, err := LoadWeights(stories)
	require.NoError(t, err)
	st, err := LoadState(dir, w)
	require.NoError(t, err)
	require.Equal(t, 2, st.Step)
	o = opts
	o.Resume = st
	_, err = Run(ctx, w, m, seqs, nil, o)
	require.NoError(t, err)
	for i, p := range full.Params {
		for j := range p.Data {
			require.InDelta(t, p.Data[j], w.Params[i].Data[j], 1e-6, p.Name)
		}
	}
	_, err = LoadState(t.TempDir(), w)
	require.True(t, errors.Is(err, ErrCheckpoint))
}

// TestSampleRepeat: with Repeat 1 every sequence holds a span of Span tokens twice, with its
// second copy starting at T/2; the draws are seeded; bad settings are errors.
func TestSampleRepeat(t *testing.T) {
	ctx := context.Background()
	opts := SampleOptions{N: 3, T: 80, Seed: 4, Repeat: 1, Span: 8}
	a, err := Sample(ctx, storiesWeights(t), opts)
	require.NoError(t, err)
	b, err := Sample(ctx, storiesWeights(t), opts)
	require.NoError(t, err)
	require.Equal(t, a, b, "seeded")
	// The groups of candidates are decoded on as many goroutines as there are CPUs (or
	// Threads); the result must not depend on how many (three groups, half repeated, so both
	// kinds of candidate are in play).
	mixed := SampleOptions{N: 2*sampleGroup + 3, T: 36, Seed: 11, Repeat: 0.5, Span: 8}
	var per [][]Sequence
	for _, procs := range []int{1, 3} {
		old := runtime.GOMAXPROCS(procs)
		s, err := Sample(ctx, storiesWeights(t), mixed)
		runtime.GOMAXPROCS(old)
		require.NoError(t, err)
		per = append(per, s)
	}
	o := mixed
	o.Threads = 2
	s, err := Sample(ctx, storiesWeights(t), o)
	require.NoError(t, err)
	require.Equal(t, per[0], per[1], "the same samples on 1 and 3 CPUs")
	require.Equal(t, per[0], s, "the same samples on 2 threads")
	for _, s := range a {
		require.Len(t, s.Tokens, 80)
		span := s.Tokens[40:48]
		found := false
		for i := 1; i+8 <= 40; i++ {
			if slices.Equal(s.Tokens[i:i+8], span) {
				found = true
			}
		}
		require.True(t, found, "the span at T/2 repeats an earlier one")
		require.Equal(t, s.Tokens[1:], s.Targets[:79])
		require.Equal(t, int32(-1), s.Targets[79])
	}
	_, err = Sample(ctx, storiesWeights(t), SampleOptions{N: 1, T: 600})
	require.ErrorIs(t, err, ErrConfig)
	_, err = Sample(ctx, storiesWeights(t), SampleOptions{N: 1, T: 20, Repeat: 2})
	require.ErrorIs(t, err, ErrConfig)
	// Excluding the sampler's own output leaves nothing it can draw.
	_, err = Sample(ctx, storiesWeights(t), SampleOptions{N: 1, T: 20, Seed: 4, Exclude: NewNGrams(1, []int32{1})})
	require.ErrorIs(t, err, ErrData)
}

// TestRunParams: with LazyParams only the lazy layers' tensors move; with LayerParams the
// embedding and final norm keep their values and every layer moves; unknown names are errors.
func TestRunParams(t *testing.T) {
	base, err := LoadWeights(stories)
	require.NoError(t, err)
	for _, ps := range []Params{LazyParams, LayerParams} {
		p, err := ParseParams(ps.String())
		require.NoError(t, err)
		require.Equal(t, ps, p)
		w, _, _, _, err := tinyRun(t, Options{Params: ps, Steps: 2, Warmup: 1, AdamW: AdamW{LR: 1e-3}, Patience: -1, EvalEvery: 100})
		require.NoError(t, err)
		for i, q := range w.Params {
			lazyLayer := slices.ContainsFunc([]string{"model.layers.2.", "model.layers.4."}, func(s string) bool { return len(q.Name) > len(s) && q.Name[:len(s)] == s })
			inLayer := len(q.Name) > 13 && q.Name[:13] == "model.layers."
			moves := lazyLayer || (ps == LayerParams && inLayer)
			require.Equal(t, moves, !slices.Equal(q.Data, base.Params[i].Data), "%v: %s", ps, q.Name)
		}
	}
	_, err = ParseParams("embeddings")
	require.ErrorIs(t, err, ErrConfig)
}

// TestSampleTemperature: the default temperature is 1; another one (same seed) draws other
// sequences, a near-zero one draws the greedy continuation; a negative one is an error.
func TestSampleTemperature(t *testing.T) {
	ctx := context.Background()
	m := loadModel(t, stories)
	draw := func(temp float64) []int32 {
		s, err := Sample(ctx, storiesWeights(t), SampleOptions{N: 1, T: 40, Seed: 7, Temperature: temp})
		require.NoError(t, err)
		return s[0].Tokens
	}
	require.Equal(t, draw(0), draw(1), "0 means the default, 1")
	require.NotEqual(t, draw(1), draw(0.5))
	g, err := m.GenerateTokens(ctx, []int32{1}, model.WithMaxTokens(39), model.WithIgnoreEOS())
	require.NoError(t, err)
	require.Equal(t, append([]int32{1}, g.Tokens...), draw(1e-4), "near-zero temperature is greedy")
	_, err = Sample(ctx, storiesWeights(t), SampleOptions{N: 1, T: 20, Temperature: -1})
	require.ErrorIs(t, err, ErrConfig)
}

// TestRunEMA: after one step with EMA d and no validation data the result is
// d·initial + (1−d)·trained, while w holds the trained weights; a decay outside [0, 1) is an error.
func TestRunEMA(t *testing.T) {
	ctx := context.Background()
	m := loadModel(t, stories)
	seqs, err := Sample(ctx, storiesWeights(t), SampleOptions{N: 2, T: 24, Seed: 3})
	require.NoError(t, err)
	w0, err := LoadWeights(stories)
	require.NoError(t, err)
	w := w0.Clone()
	const d = 0.75
	res, err := Run(ctx, w, m, seqs, nil, Options{Mask: testMask, Batch: 2, Steps: 1, AdamW: AdamW{LR: 1e-2}, EMA: d})
	require.NoError(t, err)
	moved := false
	for i, p := range w.Params {
		for j, x := range p.Data {
			want := d*w0.Params[i].Data[j] + (1-d)*x
			require.InDelta(t, want, res.Weights.Params[i].Data[j], 1e-6, "%s[%d]", p.Name, j)
			moved = moved || x != w0.Params[i].Data[j]
		}
	}
	require.True(t, moved)
	_, err = Run(ctx, w0.Clone(), m, seqs, nil, Options{Mask: testMask, Batch: 2, Steps: 1, EMA: 1})
	require.ErrorIs(t, err, ErrConfig)
}

// TestAttachTeacher: the probabilities AttachTeacher computes with the model's forward equal
// those the sampler hands over from its own decoder (two independent float32 paths; 1e-5
// absolute covers their rounding), except the last row, which predicts nothing and which the
// sampler leaves zero; a sequence that has probabilities keeps them.
func TestAttachTeacher(t *testing.T) {
	ctx := context.Background()
	m := loadModel(t, stories)
	const T, V = 40, 512
	sampled, err := Sample(ctx, storiesWeights(t), SampleOptions{N: 3, T: T, Seed: 11, Teacher: true})
	require.NoError(t, err)
	seqs := make([]Sequence, len(sampled))
	for i, s := range sampled {
		seqs[i] = Sequence{Tokens: s.Tokens, Targets: s.Targets}
	}
	seqs[2].Teacher = sampled[2].Teacher
	require.NoError(t, AttachTeacher(ctx, m, seqs))
	for i := range 2 {
		require.Len(t, seqs[i].Teacher, T*V)
		require.InDeltaSlice(t, sampled[i].Teacher[:(T-1)*V], seqs[i].Teacher[:(T-1)*V], 1e-5, "sequence %d", i)
	}
	require.Same(t, &sampled[2].Teacher[0], &seqs[2].Teacher[0])

	seqs = []Sequence{{Tokens: []int32{1, 600}, Targets: []int32{600, -1}}}
	require.Error(t, AttachTeacher(ctx, m, seqs), "a token outside the vocabulary")
}
