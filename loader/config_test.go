package loader

import (
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// base is a small valid llama config; cfg(extra) splices extra keys into it.
const base = `"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4, "vocab_size": 100, "max_position_embeddings": 256`

func cfg(modelType, extra string) string {
	s := `{"model_type": "` + modelType + `", ` + base
	if extra != "" {
		s += ", " + extra
	}
	return s + "}"
}

func TestParseConfig(t *testing.T) {
	lazyQwQ := qwqLazyLayers()
	cases := []struct {
		name  string
		json  string
		check func(t *testing.T, c Config)
	}{
		{"llama defaults", cfg("llama", ""), func(t *testing.T, c Config) {
			assert.Equal(t, Config{ModelType: "llama", HiddenSize: 64, IntermediateSize: 128, NumLayers: 4, NumHeads: 4,
				NumKVHeads: 4, HeadDim: 16, VocabSize: 100, MaxPositions: 256, RMSNormEps: 1e-6, RopeTheta: 10000,
				HiddenAct: "silu", BOS: []int32{1}, EOS: []int32{2}, StreamingSink: 4, StreamingWindow: 1020}, c)
		}},
		{"llama class defaults", `{"model_type":"llama"}`, func(t *testing.T, c Config) {
			assert.Equal(t, 4096, c.HiddenSize)
			assert.Equal(t, 11008, c.IntermediateSize)
			assert.Equal(t, 32, c.NumLayers)
			assert.Equal(t, 32, c.NumKVHeads)
			assert.Equal(t, 128, c.HeadDim)
			assert.Equal(t, 32000, c.VocabSize)
			assert.Equal(t, 2048, c.MaxPositions)
		}},
		{"llama bias, head_dim, eos list, floats as ints", cfg("llama", `"attention_bias": true, "head_dim": 32, "num_key_value_heads": 2.0, "eos_token_id": [128001, 128009], "bos_token_id": null, "tie_word_embeddings": true, "rope_theta": 500000`), func(t *testing.T, c Config) {
			assert.True(t, c.AttentionBias)
			assert.Equal(t, 32, c.HeadDim)
			assert.Equal(t, 2, c.NumKVHeads)
			assert.Equal(t, []int32{128001, 128009}, c.EOS)
			assert.Equal(t, []int32{1}, c.BOS)
			assert.True(t, c.TieEmbeddings)
			assert.Equal(t, 500000.0, c.RopeTheta)
		}},
		{"mistral no window", cfg("mistral", `"sliding_window": null`), func(t *testing.T, c Config) {
			assert.Equal(t, "mistral", c.ModelType)
			assert.False(t, c.AttentionBias)
		}},
		{"mistral window beyond context", cfg("mistral", `"sliding_window": 256`), func(t *testing.T, c Config) {}},
		{"qwen2", cfg("qwen2", `"use_sliding_window": false, "sliding_window": 4096, "tie_word_embeddings": true`), func(t *testing.T, c Config) {
			assert.True(t, c.AttentionBias)
			assert.False(t, c.QKNorm)
			assert.True(t, c.TieEmbeddings)
			assert.Nil(t, c.EOS)
			assert.Nil(t, c.BOS)
		}},
		{"qwen3", cfg("qwen3", `"num_key_value_heads": 2`), func(t *testing.T, c Config) {
			assert.True(t, c.QKNorm)
			assert.False(t, c.AttentionBias)
			assert.Equal(t, 128, c.HeadDim) // Qwen3Config default, not hidden/heads
		}},
		{"qwen3 bias", cfg("qwen3", `"attention_bias": true, "head_dim": 16`), func(t *testing.T, c Config) {
			assert.True(t, c.AttentionBias)
			assert.Equal(t, 16, c.HeadDim)
		}},
		{"qwen2littrans default lazy layers", `{"model_type":"qwen2littrans","num_hidden_layers":64,"hidden_size":5120,"num_attention_heads":40,"num_key_value_heads":8}`, func(t *testing.T, c Config) {
			assert.Equal(t, "qwen2", c.ModelType)
			assert.Equal(t, lazyQwQ, c.LazyLayers)
			assert.Len(t, c.LazyLayers, 32)
			assert.Equal(t, 129, c.StreamingSink)
			assert.Equal(t, 1025, c.StreamingWindow)
			assert.True(t, c.AttentionBias)
		}},
		{"qwen2littrans sink override", `{"model_type":"qwen2littrans","num_hidden_layers":64,"streaming_sink":4}`, func(t *testing.T, c Config) {
			assert.Equal(t, lazyQwQ, c.LazyLayers)
			assert.Equal(t, 4, c.StreamingSink)
			assert.Equal(t, 1025, c.StreamingWindow)
		}},
		{"qwen2littrans other depth", `{"model_type":"qwen2littrans","num_hidden_layers":4}`, func(t *testing.T, c Config) {
			assert.Nil(t, c.LazyLayers)
		}},
		{"qwen2littrans explicit list", `{"model_type":"qwen2littrans","num_hidden_layers":64,"lazy_layers":[3,1]}`, func(t *testing.T, c Config) {
			assert.Equal(t, []int{1, 3}, c.LazyLayers)
			assert.Equal(t, 4, c.StreamingSink)
		}},
		{"lazy layers", cfg("llama", `"lazy_layers": [3, 1], "streaming_sink": 2, "streaming_window": 8`), func(t *testing.T, c Config) {
			assert.Equal(t, []int{1, 3}, c.LazyLayers)
			assert.Equal(t, 2, c.StreamingSink)
			assert.Equal(t, 8, c.StreamingWindow)
			assert.Nil(t, c.LayerTypes)
		}},
		{"layer types", cfg("qwen2", `"layer_types": ["full_attention", "streaming_attention", "full_attention", "streaming_attention"]`), func(t *testing.T, c Config) {
			assert.Equal(t, []int{1, 3}, c.LazyLayers)
			assert.Len(t, c.LayerTypes, 4)
		}},
		{"layer types agree", cfg("qwen2", `"lazy_layers": [1], "layer_types": ["full_attention", "streaming_attention", "full_attention", "full_attention"]`), func(t *testing.T, c Config) {
			assert.Equal(t, []int{1}, c.LazyLayers)
		}},
		{"rope linear (type key)", cfg("llama", `"rope_scaling": {"type": "linear", "factor": 2.0}`), func(t *testing.T, c Config) {
			assert.Equal(t, &RopeScaling{Type: "linear", Factor: 2}, c.RopeScaling)
		}},
		{"rope default", cfg("llama", `"rope_scaling": {"rope_type": "default"}`), func(t *testing.T, c Config) {
			assert.Nil(t, c.RopeScaling)
		}},
		{"rope llama3", cfg("llama", `"rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}`), func(t *testing.T, c Config) {
			assert.Equal(t, &RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 8192}, c.RopeScaling)
		}},
		{"rope yarn defaults", cfg("qwen2", `"rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}`), func(t *testing.T, c Config) {
			assert.Equal(t, &RopeScaling{Type: "yarn", Factor: 4, OriginalMaxPositions: 32768, BetaFast: 32, BetaSlow: 1,
				AttentionFactor: 0.1*math.Log(4) + 1}, c.RopeScaling)
		}},
		{"rope yarn mscale", cfg("qwen2", `"rope_scaling": {"rope_type": "yarn", "factor": 40, "mscale": 1.0, "mscale_all_dim": 0.5, "beta_fast": 16}`), func(t *testing.T, c Config) {
			s := c.RopeScaling
			assert.Equal(t, 256, s.OriginalMaxPositions) // max_position_embeddings
			assert.Equal(t, 16.0, s.BetaFast)
			assert.InDelta(t, (0.1*math.Log(40)+1)/(0.05*math.Log(40)+1), s.AttentionFactor, 1e-15)
		}},
		{"rope_parameters (transformers v5)", cfg("llama", `"rope_parameters": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1000.0}`), func(t *testing.T, c Config) {
			assert.Equal(t, 1000.0, c.RopeTheta)
			assert.Equal(t, "linear", c.RopeScaling.Type)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig(strings.NewReader(tc.json))
			require.NoError(t, err)
			require.NoError(t, c.Validate())
			tc.check(t, c)
		})
	}
}

func TestParseConfigErrors(t *testing.T) {
	cases := []struct {
		name, json string
		want       error
		key        string // must appear in the message
	}{
		{"not json", `{`, ErrFormat, "invalid JSON"},
		{"not object", `[1]`, ErrFormat, "JSON"},
		{"null", `null`, ErrFormat, "JSON object"},
		{"no model_type", `{"hidden_size": 4}`, ErrNotFound, "model_type"},
		{"unknown model_type", `{"model_type": "gpt2"}`, ErrUnsupported, "gpt2"},
		{"gelu", cfg("llama", `"hidden_act": "gelu"`), ErrUnsupported, "hidden_act"},
		{"mlp bias", cfg("llama", `"mlp_bias": true`), ErrUnsupported, "mlp_bias"},
		{"partial rotary", cfg("llama", `"partial_rotary_factor": 0.5`), ErrUnsupported, "partial_rotary_factor"},
		{"mistral sliding window", cfg("mistral", `"sliding_window": 128`), ErrUnsupported, "sliding_window"},
		{"mistral default sliding window", cfg("mistral", `"max_position_embeddings": 32768`), ErrUnsupported, "sliding_window"},
		{"qwen2 sliding window", cfg("qwen2", `"use_sliding_window": true`), ErrUnsupported, "use_sliding_window"},
		{"qwen3 sliding window", cfg("qwen3", `"use_sliding_window": true`), ErrUnsupported, "use_sliding_window"},
		{"sliding layer type", cfg("qwen2", `"layer_types": ["full_attention", "sliding_attention", "full_attention", "full_attention"]`), ErrUnsupported, "sliding_attention"},
		{"unknown layer type", cfg("qwen2", `"layer_types": ["full_attention", "linear_attention", "full_attention", "full_attention"]`), ErrUnsupported, "linear_attention"},
		{"layer types length", cfg("qwen2", `"layer_types": ["full_attention"]`), ErrFormat, "layer_types"},
		{"layer types disagree", cfg("qwen2", `"lazy_layers": [2], "layer_types": ["full_attention", "streaming_attention", "full_attention", "full_attention"]`), ErrFormat, "layer_types"},
		{"lazy out of range", cfg("llama", `"lazy_layers": [4]`), ErrFormat, "lazy_layers"},
		{"lazy repeated", cfg("llama", `"lazy_layers": [1, 1]`), ErrFormat, "lazy_layers"},
		{"lazy not ints", cfg("llama", `"lazy_layers": [1.5]`), ErrFormat, "lazy_layers"},
		{"lazy not list", cfg("llama", `"lazy_layers": 3`), ErrFormat, "lazy_layers"},
		{"zero window", cfg("llama", `"lazy_layers": [1], "streaming_window": 0`), ErrFormat, "streaming_window"},
		{"negative sink", cfg("llama", `"streaming_sink": -1`), ErrFormat, "streaming_sink"},
		{"dynamic rope", cfg("llama", `"rope_scaling": {"type": "dynamic", "factor": 2.0}`), ErrUnsupported, "rope_scaling.type"},
		{"longrope", cfg("llama", `"rope_scaling": {"rope_type": "longrope", "factor": 2.0}`), ErrUnsupported, "rope_scaling.rope_type"},
		{"linear no factor", cfg("llama", `"rope_scaling": {"type": "linear"}`), ErrFormat, "rope_scaling.factor"},
		{"llama3 missing key", cfg("llama", `"rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0}`), ErrFormat, "original_max_position_embeddings"},
		{"llama3 bad freq factors", cfg("llama", `"rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 4.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}`), ErrFormat, "high_freq_factor"},
		{"yarn no truncate", cfg("llama", `"rope_scaling": {"rope_type": "yarn", "factor": 4.0, "truncate": false}`), ErrUnsupported, "truncate"},
		{"rope_scaling not object", cfg("llama", `"rope_scaling": 3`), ErrFormat, "rope_scaling"},
		{"zero factor", cfg("llama", `"rope_scaling": {"type": "linear", "factor": 0}`), ErrFormat, "factor"},
		{"string int", cfg("llama", `"num_key_value_heads": "2"`), ErrFormat, "num_key_value_heads"},
		{"fractional int", cfg("llama", `"num_key_value_heads": 2.5`), ErrFormat, "num_key_value_heads"},
		{"huge int", cfg("llama", `"vocab_size": 1e300`), ErrFormat, "vocab_size"},
		{"gqa mismatch", cfg("llama", `"num_key_value_heads": 3`), ErrFormat, "num_key_value_heads"},
		{"odd head dim", cfg("llama", `"head_dim": 15`), ErrFormat, "head_dim"},
		{"indivisible hidden", cfg("llama", `"num_attention_heads": 5`), ErrFormat, "hidden_size"},
		{"zero layers", cfg("llama", `"num_hidden_layers": 0`), ErrFormat, "num_hidden_layers"},
		{"huge hidden", cfg("llama", `"hidden_size": 1099511627776, "head_dim": 16`), ErrFormat, "hidden_size"},
		{"negative eps", cfg("llama", `"rms_norm_eps": -1`), ErrFormat, "rms_norm_eps"},
		{"bool as string", cfg("llama", `"tie_word_embeddings": "true"`), ErrFormat, "tie_word_embeddings"},
		{"eos negative", cfg("llama", `"eos_token_id": -1`), ErrFormat, "eos_token_id"},
		{"eos huge", cfg("llama", `"eos_token_id": [2, 4294967296]`), ErrFormat, "eos_token_id"},
		{"eos string", cfg("llama", `"eos_token_id": "2"`), ErrFormat, "eos_token_id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig(strings.NewReader(tc.json))
			require.Error(t, err)
			assert.ErrorIs(t, err, tc.want)
			assert.ErrorContains(t, err, tc.key)
			assert.True(t, strings.HasPrefix(err.Error(), "loader: "), err.Error())
		})
	}
}

func TestParseGenerationConfig(t *testing.T) {
	g, err := ParseGenerationConfig(strings.NewReader(`{"_from_model_config": true, "bos_token_id": 151643, "eos_token_id": [151645, 151643], "pad_token_id": 151643, "do_sample": true, "repetition_penalty": 1.05, "temperature": 0.7, "top_k": 20, "top_p": 0.8, "transformers_version": "4.37.0"}`))
	require.NoError(t, err)
	assert.Equal(t, GenerationConfig{BOS: []int32{151643}, EOS: []int32{151645, 151643}, Temperature: 0.7, TopP: 0.8,
		TopK: 20, DoSample: true, RepetitionPenalty: 1.05}, g)
	g, err = ParseGenerationConfig(strings.NewReader(`{"eos_token_id": 2}`))
	require.NoError(t, err)
	assert.Equal(t, GenerationConfig{EOS: []int32{2}, Temperature: 1, TopP: 1, TopK: 50, RepetitionPenalty: 1}, g)

	for _, tc := range []struct{ json, key string }{
		{`{"temperature": -1}`, "temperature"},
		{`{"top_p": 1.5}`, "top_p"},
		{`{"top_k": -2}`, "top_k"},
		{`{"repetition_penalty": 0}`, "repetition_penalty"},
		{`{"do_sample": 1}`, "do_sample"},
		{`{"eos_token_id": [1, "x"]}`, "eos_token_id"},
		{`{"bos_token_id": {}}`, "bos_token_id"},
		{`[]`, "JSON"},
	} {
		_, err := ParseGenerationConfig(strings.NewReader(tc.json))
		assert.ErrorIs(t, err, ErrFormat, tc.json)
		assert.ErrorContains(t, err, tc.key, tc.json)
	}
}

// naiveInvFreq is the float64 twin of RopeInvFreq (no float32 rounding).
func naiveInvFreq(c Config) ([]float64, float64) {
	dim := c.HeadDim
	inv := make([]float64, dim/2)
	for i := range inv {
		inv[i] = 1 / math.Pow(c.RopeTheta, float64(2*i)/float64(dim))
	}
	s := c.RopeScaling
	if s == nil {
		return inv, 1
	}
	switch s.Type {
	case "linear":
		for i := range inv {
			inv[i] /= s.Factor
		}
	case "llama3":
		lowWL := float64(s.OriginalMaxPositions) / s.LowFreqFactor
		highWL := float64(s.OriginalMaxPositions) / s.HighFreqFactor
		for i, f := range inv {
			wl := 2 * math.Pi / f
			switch {
			case wl < highWL:
			case wl > lowWL:
				inv[i] = f / s.Factor
			default:
				sm := (float64(s.OriginalMaxPositions)/wl - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor)
				inv[i] = (1-sm)*f/s.Factor + sm*f
			}
		}
	case "yarn":
		corr := func(rot float64) float64 {
			return float64(dim) * math.Log(float64(s.OriginalMaxPositions)/(rot*2*math.Pi)) / (2 * math.Log(c.RopeTheta))
		}
		lo := math.Max(math.Floor(corr(s.BetaFast)), 0)
		hi := math.Min(math.Ceil(corr(s.BetaSlow)), float64(dim-1))
		if lo == hi {
			hi += 0.001
		}
		for i, f := range inv {
			ramp := math.Min(math.Max((float64(i)-lo)/(hi-lo), 0), 1)
			inv[i] = f/s.Factor*ramp + f*(1-ramp)
		}
		return inv, s.AttentionFactor
	}
	return inv, 1
}

func TestRopeInvFreq(t *testing.T) {
	// Exact values: dim 4, theta 10000: exponents 0 and 0.5, 10000**0.5 = 100.
	inv, scale := Config{HeadDim: 4, RopeTheta: 10000}.RopeInvFreq()
	assert.Equal(t, []float32{1, float32(1) / 100}, inv)
	assert.Equal(t, float32(1), scale)

	cases := []Config{
		{HeadDim: 64, RopeTheta: 10000},
		{HeadDim: 128, RopeTheta: 1e6},
		{HeadDim: 16, RopeTheta: 500000},
		{HeadDim: 128, RopeTheta: 10000, RopeScaling: &RopeScaling{Type: "linear", Factor: 4}},
		{HeadDim: 128, RopeTheta: 500000, RopeScaling: &RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 8192}},
		{HeadDim: 128, RopeTheta: 1e6, RopeScaling: &RopeScaling{Type: "yarn", Factor: 4, OriginalMaxPositions: 32768, BetaFast: 32, BetaSlow: 1, AttentionFactor: 0.1*math.Log(4) + 1}},
		{HeadDim: 64, RopeTheta: 10000, RopeScaling: &RopeScaling{Type: "yarn", Factor: 16, OriginalMaxPositions: 4096, BetaFast: 32, BetaSlow: 1, AttentionFactor: 1.25}},
	}
	for _, c := range cases {
		got, gotScale := c.RopeInvFreq()
		want, wantScale := naiveInvFreq(c)
		require.Len(t, got, c.HeadDim/2)
		// float32 arithmetic in a handful of steps: a few ulps (2^-24 each) of
		// relative error against the float64 twin.
		for i := range got {
			assert.InEpsilon(t, want[i], float64(got[i]), 1e-6, "%+v [%d]", c.RopeScaling, i)
		}
		assert.InEpsilon(t, wantScale, float64(gotScale), 1e-7)
	}

	// Linear scaling is the default divided by the factor, in float32.
	def, _ := Config{HeadDim: 32, RopeTheta: 10000}.RopeInvFreq()
	lin, _ := Config{HeadDim: 32, RopeTheta: 10000, RopeScaling: &RopeScaling{Type: "linear", Factor: 3}}.RopeInvFreq()
	for i := range def {
		assert.Equal(t, def[i]/3, lin[i])
	}
	// llama3: high frequencies untouched, low ones divided by the factor.
	l3, _ := Config{HeadDim: 128, RopeTheta: 500000, RopeScaling: &RopeScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 8192}}.RopeInvFreq()
	d3, _ := Config{HeadDim: 128, RopeTheta: 500000}.RopeInvFreq()
	assert.Equal(t, d3[0], l3[0])
	assert.Equal(t, d3[63]/8, l3[63])

	assert.Panics(t, func() { Config{HeadDim: 3}.RopeInvFreq() })
}
