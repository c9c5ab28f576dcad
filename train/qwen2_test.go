package train

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lighttransfer/lighttransfer-go/internal/testutil"
	"github.com/lighttransfer/lighttransfer-go/loader"
)

// writeRandomQwen2 writes a random qwen2 checkpoint (q/k/v biases, untied LM head, GQA) in
// dtype ("F32" or "BF16") to a new directory.
func writeRandomQwen2(t *testing.T, dtype string) string {
	dir := t.TempDir()
	cfg := map[string]any{"model_type": "qwen2", "architectures": []string{"Qwen2ForCausalLM"}, "vocab_size": 96,
		"hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 3, "num_attention_heads": 4,
		"num_key_value_heads": 2, "max_position_embeddings": 128, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
		"tie_word_embeddings": false, "hidden_act": "silu", "bos_token_id": 1, "eos_token_id": 2}
	b, err := json.Marshal(cfg)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644))
	c, err := loader.ParseConfig(bytes.NewReader(b))
	require.NoError(t, err)
	r := rand.New(rand.NewPCG(3, 4))
	var ts []testutil.Tensor
	for _, name := range paramNames(c) {
		shape := expectedShape(c, name)
		n := 1
		for _, d := range shape {
			n *= d
		}
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(r.NormFloat64()) * 0.3
			if len(shape) == 1 && filepath.Ext(name) == ".weight" {
				x[i] = 1 + 0.1*x[i]
			}
		}
		var data []byte
		switch dtype {
		case "F32":
			data = make([]byte, 4*n)
			for i, v := range x {
				binary.LittleEndian.PutUint32(data[4*i:], math.Float32bits(v))
			}
		case "BF16":
			data = make([]byte, 2*n)
			for i, v := range x {
				binary.LittleEndian.PutUint16(data[2*i:], toBF16(v))
			}
		}
		ts = append(ts, testutil.Tensor{Name: name, DType: dtype, Shape: shape, Data: data})
	}
	require.NoError(t, testutil.WriteSafetensors(filepath.Join(dir, "model.safetensors"), ts))
	return dir
}

// TestQwen2MatchesInference: on a random qwen2 checkpoint (biases, untied head) the training
// graph's fixed-mask loss equals the inference engine's fixed-mode NLL (itself checked against
// Hugging Face), its gradients match finite differences of that loss, and the written
// checkpoint keeps the input dtype and the untied head.
func TestQwen2MatchesInference(t *testing.T) {
	for _, dtype := range []string{"F32", "BF16"} {
		t.Run(dtype, func(t *testing.T) {
			dir := writeRandomQwen2(t, dtype)
			w, err := LoadWeights(dir)
			require.NoError(t, err)
			require.NotNil(t, w.Param("lm_head.weight"))
			require.NotNil(t, w.Param("model.layers.0.self_attn.q_proj.bias"))
			mask := Mask{Lazy: []int{1}, Sink: 2, Window: 5}
			r := rand.New(rand.NewPCG(5, 6))
			toks := make([]int32, 40)
			for i := range toks {
				toks[i] = int32(r.IntN(96))
			}
			toks[0] = 1
			m := loadModel(t, dir)
			want, err := NLL(context.Background(), m, toks, 1, mask)
			require.NoError(t, err)
			st, err := OneStep(w.Clone(), mask, toks, 0, AdamW{LR: 1e-3})
			require.NoError(t, err)
			require.InDelta(t, want, st.Loss, 2e-5*want)

			// Finite differences (float32 loss, so a coarse step) on a few bias and head entries.
			loss := func(w *Weights) float64 {
				n, err := newNet(w, mask, 1, len(toks), false, false)
				require.NoError(t, err)
				s := Sequence{Tokens: toks, Targets: make([]int32, len(toks))}
				for i := range toks {
					s.Targets[i] = -1
					if i+1 < len(toks) {
						s.Targets[i] = toks[i+1]
					}
				}
				l, err := n.run(makeBatch([]Sequence{s}, 0, 1, nil))
				require.NoError(t, err)
				return l
			}
			for _, name := range []string{"model.layers.1.self_attn.k_proj.bias", "lm_head.weight", "model.layers.2.self_attn.v_proj.bias"} {
				g := st.Grads[name]
				var mx float64
				for _, x := range g {
					mx = math.Max(mx, math.Abs(float64(x)))
				}
				for _, i := range []int{0, 3, 7} {
					wp, wm := w.Clone(), w.Clone()
					const h = 1e-2
					wp.Param(name).Data[i] += h
					wm.Param(name).Data[i] -= h
					fd := (loss(wp) - loss(wm)) / (2 * h)
					require.InDelta(t, fd, float64(g[i]), 2e-2*mx+1e-4, "%s[%d]", name, i)
				}
			}

			out := filepath.Join(t.TempDir(), "ft")
			require.NoError(t, SaveCheckpoint(out, dir, w, mask))
			ck, err := loader.Open(out)
			require.NoError(t, err)
			defer ck.Close()
			info, ok := ck.Tensor("lm_head.weight")
			require.True(t, ok)
			require.Equal(t, dtype, info.DType.String())
			require.Equal(t, []int{1}, ck.Config().LazyLayers)
		})
	}
}
