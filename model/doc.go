// Package model runs Llama-family language models (Llama, Mistral, Qwen2, Qwen3) on the CPU
// with hybrid attention: every layer keeps either a full KV cache or, for the "lazy" layers of
// the LightTransfer method, a streaming cache of a few attention-sink tokens plus a recent
// window.
//
// Load reads a Hugging Face checkpoint directory into a read-only Model that any number of
// goroutines may share. Each sequence runs in its own Session, which owns the absolute token
// position, the per-layer KV cache and the activation buffers. A Session runs in one of three
// attention modes:
//
//   - FullAttention: every layer keeps a full cache (the default, unless the checkpoint's
//     config declares lazy layers).
//   - TestMode: LightTransfer-Test. The first forward (the prefill) runs full attention in
//     every layer, measures each layer's lazy ratio and, through a max-heap, turns the laziest
//     layers into streaming layers as soon as enough layers have been seen, so peak KV memory
//     stays bounded during the prefill.
//   - FixedMode / WithPlan: a fixed list of lazy layers (LightTransfer-Train checkpoints and
//     calibrated plans); the streaming mask applies to every query of those layers.
//
// A streaming layer's query at absolute position q attends to the keys k < sink and
// q − window < k ≤ q; keys are cached after RoPE at their own positions and never re-indexed.
// Test mode keeps ceil(keep·L) layers full and makes lazy the layers with the highest lazy
// ratios, measured on the first forward. docs/method.md in the repository defines the masks,
// the lazy ratio and both modes exactly.
//
// Any layer's cache may store its keys and values in bfloat16 or int8 instead of float32
// (WithKV, WithKVTypes; kvcache.Type): Test mode measures its lazy ratios on the prompt's own
// float32 keys whatever the type, so the layer choice does not depend on it, and converted
// layers keep their type. Session.CloneKV re-encodes a float32 session's cache in other types.
//
// Forward returns logits as a gorgonia.org/tensor Dense of shape [n][vocab] (for tests and
// reference checks); Next returns only the last row, which is what generation needs; Generate
// and GenerateTokens turn text or token prompts into continuations.
//
// Cancellation through ctx lands between prefill chunks and between decode steps and leaves the
// session usable (see Session.Next); Model.Close waits for the steps in flight, after which
// everything returns ErrClosed. Misuse returns errors wrapping this package's sentinels (or
// package loader's and tokenizer's), never a panic; nothing is logged unless WithLogger is
// given.
//
// Weights are kept as float32, bf16 or, with WithWeightFormat(WeightsQ8 or WeightsQ4),
// quantized at load in blocks of 32 input columns (model/weights.go; the kernels in
// model/internal/kernels decode on int8 activations and prefill on dequantized tiles).
//
// # Layout
//
// Where things go (a new architecture, KV layer type or backend is one more file or package):
//
//	model/llama.go         an architecture: the table of its tensors (names, shapes, optional
//	                       ones), walked by loading, Random and WeightBytes (arch.go); a new
//	                       architecture is one such file plus its config defaults in loader
//	model/forward.go       the one forward: math over weights, buffers and cache layers
//	model/session.go       a sequence's state, changed only through its step methods
//	model/backend.go       the compute seam (products, norms, RoPE, attention, lazy ratio,
//	                       cache factory); backend_cpu.go is the CPU implementation, a GPU
//	                       one is another implementation (package cuda has its kernels)
//	kvcache/full.go, streaming.go   the cache layer kinds; a new one (bf16, int8, …) is a file
//	internal/cpu           feature detection, the purego convention, the one worker pool
package model
