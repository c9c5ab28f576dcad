package model

import "github.com/lighttransfer/lighttransfer-go/loader"

// llamaFamily describes Llama, Mistral, Qwen2 and Qwen3: pre-norm decoder layers of grouped-
// query attention and a SwiGLU MLP. Qwen2 (and Llama or Qwen3 with attention_bias) add q/k/v
// biases; Qwen3 adds a per-head RMSNorm of q and k before RoPE. Which of those a checkpoint has
// is data from its config (loader fills AttentionBias and QKNorm from the model type's
// defaults), so one table covers the family.
var llamaFamily = architecture{
	name: "llama",
	layer: []layerTensor{
		{name: "input_layernorm.weight", rows: dimHidden, fill: 1, vec: func(l *layerWeights) *[]float32 { return &l.attnNorm }},
		{name: "post_attention_layernorm.weight", rows: dimHidden, fill: 1, vec: func(l *layerWeights) *[]float32 { return &l.mlpNorm }},
		{name: "self_attn.q_proj.weight", rows: dimQ, cols: dimHidden, mat: func(l *layerWeights) *matrix { return &l.q }},
		{name: "self_attn.k_proj.weight", rows: dimKV, cols: dimHidden, mat: func(l *layerWeights) *matrix { return &l.k }},
		{name: "self_attn.v_proj.weight", rows: dimKV, cols: dimHidden, mat: func(l *layerWeights) *matrix { return &l.v }},
		{name: "self_attn.o_proj.weight", rows: dimHidden, cols: dimQ, mat: func(l *layerWeights) *matrix { return &l.o }},
		{name: "self_attn.q_proj.bias", rows: dimQ, present: hasBias, vec: func(l *layerWeights) *[]float32 { return &l.qBias }},
		{name: "self_attn.k_proj.bias", rows: dimKV, present: hasBias, vec: func(l *layerWeights) *[]float32 { return &l.kBias }},
		{name: "self_attn.v_proj.bias", rows: dimKV, present: hasBias, vec: func(l *layerWeights) *[]float32 { return &l.vBias }},
		{name: "self_attn.q_norm.weight", rows: dimHead, fill: 1, present: hasQKNorm, vec: func(l *layerWeights) *[]float32 { return &l.qNorm }},
		{name: "self_attn.k_norm.weight", rows: dimHead, fill: 1, present: hasQKNorm, vec: func(l *layerWeights) *[]float32 { return &l.kNorm }},
		{name: "mlp.gate_proj.weight", rows: dimInter, cols: dimHidden, mat: func(l *layerWeights) *matrix { return &l.gate }},
		{name: "mlp.up_proj.weight", rows: dimInter, cols: dimHidden, mat: func(l *layerWeights) *matrix { return &l.up }},
		{name: "mlp.down_proj.weight", rows: dimHidden, cols: dimInter, mat: func(l *layerWeights) *matrix { return &l.down }},
	},
}

func hasBias(c *loader.Config) bool   { return c.AttentionBias }
func hasQKNorm(c *loader.Config) bool { return c.QKNorm }

// layerWeights holds one decoder layer's tensors; biases and q/k norms are nil when the
// architecture has none.
type layerWeights struct {
	attnNorm, mlpNorm []float32
	q, k, v, o        matrix
	qBias, kBias      []float32
	vBias             []float32
	qNorm, kNorm      []float32
	gate, up, down    matrix
}
