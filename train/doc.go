// Package train is LightTransfer-Train: it fine-tunes a Llama-family checkpoint (llama,
// mistral, qwen2; biases and tied or untied LM heads) with a fixed list of lazy layers that
// use the streaming mask (sink + recent window) on every row, the other layers causal, so
// that the model recovers what those layers lose. The result is a checkpoint that
// model.Load opens in fixed mode.
//
// The model is a gorgonia expression graph differentiated by gorgonia's Grad and run on its
// TapeMachine, in float32. Its heavy parts are custom gorgonia Ops with their own gradient
// Ops: matrix products (a blocked float32 tile kernel: AVX2+FMA assembly where the CPU has it,
// a Go twin elsewhere), attention under causal or streaming masks with GQA,
// RMSNorm, RoPE, SwiGLU, the embedding lookup and the losses; residual sums and the
// accumulation of gradients are gorgonia's own. Every custom Op's gradient is checked
// against float64 finite differences in the tests, and one whole step against PyTorch.
//
// Training (Run) minimises either next-token cross-entropy over target rows (SFT) or the
// KL divergence from the full-attention model's next-token distribution (distillation), with
// AdamW as torch.optim.AdamW defines it, warmup plus cosine decay, clipping by global norm,
// gradient accumulation and a seeded data order, validating on held-out sequences and
// keeping the best weights. Data come from JSONL ({"text"}, {"prompt","completion"},
// {"messages"}) packed to a sequence length, or from the full model's own samples (Sample).
package train
