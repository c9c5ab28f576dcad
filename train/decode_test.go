package train

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lighttransfer/lighttransfer-go/model"
)

// TestDecoderMatchesModel: five sequences fed to the lockstep decoder one position at a time
// give, at every position, the logits of the model's full-attention forward over the whole
// sequence, on both tile kernels (five rows: a full tile of four and a ragged one; 200
// positions: keys over 13 panels). Tolerance 2e-4 absolute on logits of magnitude ≤ 20:
// float32 sums in another order, through five layers.
func TestDecoderMatchesModel(t *testing.T) {
	ctx := context.Background()
	m := loadModel(t, stories)
	w := storiesWeights(t)
	b, err := os.ReadFile("../testdata/train-stories260K/greedy256.json")
	require.NoError(t, err)
	var greedy []int32
	require.NoError(t, json.Unmarshal(b, &greedy))
	const T = 200
	seqs, err := Sample(ctx, w, SampleOptions{N: 4, T: T, Seed: 21, Repeat: 0.5, Span: 8})
	require.NoError(t, err)
	toks := [][]int32{greedy[:T]}
	for _, s := range seqs {
		toks = append(toks, s.Tokens)
	}
	V := w.Config.VocabSize
	var want [][]float32
	for _, ids := range toks {
		s, err := m.NewSession(model.FullAttention())
		require.NoError(t, err)
		lg, err := s.Forward(ctx, ids)
		require.NoError(t, err)
		want = append(want, append([]float32(nil), lg.Data().([]float32)...))
		s.Close()
	}
	saved := useAVX2
	defer func() { useAVX2 = saved }()
	for _, avx := range []bool{saved, false} {
		useAVX2 = avx
		d := newDecoder(newDecWeights(w, T), len(toks), T)
		ids := make([]int32, len(toks))
		worst := 0.0
		for p := range T {
			for g := range toks {
				ids[g] = toks[g][p]
			}
			d.step(ids, p)
			for g := range toks {
				for j, x := range d.logits[g*V : (g+1)*V] {
					worst = math.Max(worst, math.Abs(float64(x-want[g][p*V+j])))
				}
			}
		}
		require.Less(t, worst, 2e-4, "AVX2 %v", avx)
	}
}

// TestDrawToken: the draws follow softmax(logits/temp): on three tokens with probabilities
// 0.5, 0.3, 0.2 the frequencies of 20000 draws are within 0.015 (about 4.5 standard
// errors); a temperature too cold to resolve gives the most likely token.
func TestDrawToken(t *testing.T) {
	logits := []float32{float32(math.Log(0.5)), float32(math.Log(0.3)), float32(math.Log(0.2))}
	for i := range logits {
		logits[i] *= 2 // temperature 2 undoes it
	}
	r := newStream(3)
	p := make([]float32, 3)
	var n [3]int
	const draws = 20000
	for range draws {
		n[drawToken(r, logits, p, 2)]++
	}
	for i, want := range []float64{0.5, 0.3, 0.2} {
		require.InDelta(t, want, float64(n[i])/draws, 0.015, "token %d", i)
	}
	require.Equal(t, int32(0), drawToken(r, logits, p, 1e-9))
}

// BenchmarkSample measures the sampler on stories260K: 256 sequences of 256 tokens
// (tokens/s of wall time, and per CPU-second).
func BenchmarkSample(b *testing.B) {
	w := storiesWeights(b)
	const n, T = 256, 256
	for b.Loop() {
		c0, t0 := cpuTime(), time.Now()
		_, err := Sample(context.Background(), w, SampleOptions{N: n, T: T, Seed: 1, Repeat: 0.5})
		require.NoError(b, err)
		b.ReportMetric(float64(n*T)/time.Since(t0).Seconds(), "tok/s")
		b.ReportMetric(float64(n*T)/(cpuTime()-c0).Seconds(), "tok/cpu-s")
	}
}

// TestSampleTeacher: with Teacher every sampled sequence carries the model's full-attention
// probabilities of its rows (the last one zero), as the model's own forward gives them within
// 2e-5 (probabilities ≤ 1; float32 sums in another order); the same tokens as without; and
// training on them matches training with the model as teacher (loss within 1e-4).
func TestSampleTeacher(t *testing.T) {
	ctx := context.Background()
	m := loadModel(t, stories)
	w := storiesWeights(t)
	opts := SampleOptions{N: 4, T: 64, Seed: 5, Repeat: 0.5, Span: 8}
	plain, err := Sample(ctx, w, opts)
	require.NoError(t, err)
	opts.Teacher = true
	seqs, err := Sample(ctx, w, opts)
	require.NoError(t, err)
	V := w.Config.VocabSize
	want, err := teacherProbs(ctx, m, seqs)
	require.NoError(t, err)
	for i, s := range seqs {
		require.Equal(t, plain[i].Tokens, s.Tokens)
		require.Len(t, s.Teacher, 64*V)
		for j, p := range s.Teacher[:63*V] {
			require.InDelta(t, want[i*64*V+j], p, 2e-5, "sequence %d row %d", i, j/V)
		}
		for _, p := range s.Teacher[63*V:] {
			require.Zero(t, p)
		}
	}
	run := func(data []Sequence) *Result {
		res, err := Run(ctx, storiesWeights(t), m, data, nil, Options{Mask: testMask, Batch: 2, Steps: 2, Seed: 1})
		require.NoError(t, err)
		return res
	}
	a, b := run(plain), run(seqs)
	for i := range a.Curve {
		require.InDelta(t, a.Curve[i].Loss, b.Curve[i].Loss, 1e-4)
	}
	bad := []Sequence{seqs[0], seqs[1]}
	bad[1].Teacher = bad[1].Teacher[:V]
	_, err = Run(ctx, storiesWeights(t), m, bad, nil, Options{Mask: testMask, Batch: 2, Steps: 1})
	require.ErrorIs(t, err, ErrData)
}
