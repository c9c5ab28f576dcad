package model_test

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lighttransfer/lighttransfer-go/internal/testutil"
	"github.com/lighttransfer/lighttransfer-go/loader"
	"github.com/lighttransfer/lighttransfer-go/model"
)

// TestQuantizedByteAccounting: WeightBytes of quantized weights, counted independently from
// the checkpoint's tensor shapes: per row ceil(cols/32) blocks of 32 int8 + a float16 scale
// (34 bytes) for q8; for q4 16 bytes + a float16 scale per block and a float16 offset per
// block, offsets padded per row to a multiple of 8 blocks; the q4 model's embedding (tied LM
// head, counted once) in q8; vectors stay float32.
func TestQuantizedByteAccounting(t *testing.T) {
	dir := testutil.Testdata(t, "stories260K")
	ck, err := loader.Open(dir)
	require.NoError(t, err)
	var q8, q4 int64
	for _, ti := range ck.Tensors() {
		if len(ti.Shape) == 1 {
			q8 += ti.Size
			q4 += ti.Size
			continue
		}
		rows, nb := int64(ti.Shape[0]), int64((ti.Shape[1]+31)/32)
		q8 += rows * nb * 34
		if ti.Name == "model.embed_tokens.weight" {
			q4 += rows * nb * 34
		} else {
			q4 += rows * (nb*18 + (nb+7)/8*8*2)
		}
	}
	require.NoError(t, ck.Close())
	require.Equal(t, q8, loadModel(t, dir, model.WithWeightFormat(model.WeightsQ8)).WeightBytes())
	require.Equal(t, q4, loadModel(t, dir, model.WithWeightFormat(model.WeightsQ4)).WeightBytes())
}

// TestQuantizedLogits: over greedy256, the logits of quantized weights stay near the f32
// model's. Bounds (measured: q8 max error 0.39, q4 4.6, of logits up to 24, the worst of
// 256×512; argmax agreement q8 0.988, q4 0.934) are set about 2× looser in error; a kernel
// that mixed up blocks or scales moves the argmax almost everywhere.
func TestQuantizedLogits(t *testing.T) {
	dir := testutil.Testdata(t, "stories260K")
	toks := greedyTokens(t, dir)
	ctx := context.Background()
	ref := loadModel(t, dir, model.WithWeightFormat(model.WeightsF32))
	want := forwardRows(t, ref, toks)
	for _, c := range []struct {
		format        model.WeightFormat
		maxErr, agree float64
	}{{model.WeightsQ8, 0.8, 0.96}, {model.WeightsQ4, 9, 0.88}} {
		t.Run(c.format.String(), func(t *testing.T) {
			m := loadModel(t, dir, model.WithWeightFormat(c.format))
			got := forwardRows(t, m, toks)
			var worst float64
			same := 0
			for i := range want {
				worst = math.Max(worst, maxAbsDiff(want[i], got[i]))
				if argmax(want[i]) == argmax(got[i]) {
					same++
				}
			}
			t.Logf("%s: max |Δlogit| %.3f, argmax agreement %.3f", c.format, worst, float64(same)/float64(len(want)))
			require.Less(t, worst, c.maxErr)
			require.Greater(t, float64(same)/float64(len(want)), c.agree)

			// Decode (int8 activations) against prefill (float activations) of the same
			// weights: the activations' rounding only.
			s, err := m.NewSession()
			require.NoError(t, err)
			defer s.Close()
			_, err = s.Next(ctx, toks[:100])
			require.NoError(t, err)
			var dworst float64
			for i := 100; i < 140; i++ {
				l, err := s.Next(ctx, toks[i:i+1])
				require.NoError(t, err)
				dworst = math.Max(dworst, maxAbsDiff(l, got[i]))
			}
			t.Logf("%s: decode vs prefill max |Δlogit| %.3f", c.format, dworst)
			require.Less(t, dworst, 0.6) // measured 0.30 (q8), 0.33 (q4)
		})
	}
}

// forwardRows returns the logits of every position of toks from one full-attention forward.
func forwardRows(t *testing.T, m *model.Model, toks []int32) [][]float32 {
	t.Helper()
	s, err := m.NewSession(model.FullAttention())
	require.NoError(t, err)
	defer s.Close()
	lg, err := s.Forward(context.Background(), toks)
	require.NoError(t, err)
	v := m.Config().VocabSize
	data := lg.Data().([]float32)
	rows := make([][]float32, len(toks))
	for i := range rows {
		rows[i] = data[i*v : (i+1)*v]
	}
	return rows
}

// TestQuantizedModes: batched decode, Test mode and fixed mode run unchanged on quantized
// weights. A batch step multiplies rows with the dequantized weights and float activations,
// Next with int8 activations, so the two differ by the activations' rounding (≈0.4% of a
// block's largest value): 0.05 on logits of order 1 here. Fixed mode's chunked prefill equals
// one forward to float rounding, as with float weights.
func TestQuantizedModes(t *testing.T) {
	cfg := smallConfig(4, 512)
	cfg.IntermediateSize = 72 // rows of the down projection not a multiple of the block
	for _, f := range []model.WeightFormat{model.WeightsQ8, model.WeightsQ4} {
		t.Run(f.String(), func(t *testing.T) {
			ctx := context.Background()
			m, err := model.Random(ctx, cfg, 11, model.WithWeightFormat(f))
			require.NoError(t, err)
			defer m.Close()
			mk := func() []*model.Session {
				var out []*model.Session
				for i, opt := range []model.SessionOption{
					model.FullAttention(),
					model.TestMode(model.WithSink(2), model.WithWindow(16), model.WithLast(8)),
					model.FixedMode([]int{0, 3}, model.WithSink(1), model.WithWindow(9)),
				} {
					s, err := m.NewSession(opt)
					require.NoError(t, err)
					_, err = s.Next(ctx, randomTokens(40+13*i, cfg.VocabSize, uint64(i)))
					require.NoError(t, err)
					out = append(out, s)
				}
				return out
			}
			solo, batched := mk(), mk()
			require.NotEmpty(t, solo[1].Lazy())
			require.Equal(t, solo[1].Lazy(), batched[1].Lazy())
			b := m.NewBatch()
			for step := 0; step < 10; step++ {
				toks := randomTokens(3, cfg.VocabSize, uint64(100+step))
				got, err := b.Step(ctx, batched, toks)
				require.NoError(t, err)
				for i, s := range solo {
					want, err := s.Next(ctx, toks[i:i+1])
					require.NoError(t, err)
					require.InDeltaSlice(t, want, got[i], 0.05, "step %d session %d", step, i)
				}
			}

			toks := randomTokens(300, cfg.VocabSize, 8)
			opts := model.FixedMode([]int{1, 2}, model.WithSink(3), model.WithWindow(20))
			a, err := m.NewSession(opts)
			require.NoError(t, err)
			want, err := a.Forward(ctx, toks)
			require.NoError(t, err)
			c, err := m.NewSession(opts, model.WithChunkSize(7))
			require.NoError(t, err)
			got, err := c.Forward(ctx, toks)
			require.NoError(t, err)
			// The products give a row the same bits in any span, but attention over 7-token
			// chunks sums in another order, and a last-bit difference of its output can move
			// an activation across an int8 rounding boundary (a step of max|x|/127 in one
			// value), which later layers carry on: without such a flip the logits agree to
			// 3e-7; with one, 1.6e-5 was seen (AVX2 route) and 1.2e-3 (pure-Go q4 route,
			// chunks of 6 and 7; chunks of 5, 9, 11, 13 and 17 flip nothing there).
			require.InDeltaSlice(t, want.Data(), got.Data(), 2e-3)
		})
	}
}

func TestParseWeightFormat(t *testing.T) {
	for f := model.WeightsAuto; f <= model.WeightsQ4; f++ {
		g, err := model.ParseWeightFormat(f.String())
		require.NoError(t, err)
		require.Equal(t, f, g)
	}
	_, err := model.ParseWeightFormat("q3")
	require.ErrorIs(t, err, model.ErrOption)
}

func greedyTokens(t *testing.T, dir string) []int32 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "greedy256.json"))
	require.NoError(t, err)
	var toks []int32
	require.NoError(t, json.Unmarshal(b, &toks))
	return toks
}
