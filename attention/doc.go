// Package attention holds the CPU attention kernels of lighttransfer-go: rotary
// position embedding (RoPE, Hugging Face "rotate_half" layout) and causal
// flash-style softmax attention with grouped-query heads (GQA), an optional
// streaming mask (attention sinks plus a recent window) and a per-query
// log-sum-exp output used to compute LightTransfer's lazy ratios.
//
// # Layouts
//
// All tensors are plain []float32 in row-major, token-major order:
//
//   - q, out: [n][Heads*HeadDim]; head h of token t starts at t*Heads*HeadDim + h*HeadDim.
//   - k, v:   [n][KVHeads*HeadDim]; query head h reads KV head h/(Heads/KVHeads).
//   - lse:    [n][Heads], natural log.
//
// Positions are absolute token positions (int32). Keys carry their own
// positions, so cached keys may be stored in any slot order (a ring buffer,
// several blocks); the mask is decided by positions only.
//
// # Reduced-precision caches
//
// A KV that also implements [QKV] may hold segments in bfloat16 ([ElemBF16]) or int8 with
// per-group scales ([ElemQ8]). Attention reads them where they lie: per key tile of 64 tokens
// and KV head it decodes keys and values once into an L1-resident buffer (AVX-512, AVX2 or
// pure-Go dequantization, chosen at run time) that all the head's query heads and every query
// of the tile then share, so the cache is read once per call and never copied to float32.
//
// # Semantics
//
// For a query at position qp, key position kp is visible iff kp <= qp and, in a
// streaming mask (Window > 0), kp < Sink or kp > qp-Window. Attention is
// softmax(scale·q·kᵀ) over the visible keys, then the weighted sum of their
// values, computed in float32 with an online (running-max) softmax over key
// tiles, so no n×n score matrix is ever built.
//
// # Concurrency and allocation
//
// The kernels keep their scratch in a sync.Pool and allocate nothing per call
// once warm. With Params.Threads > 1 the work runs on an internal/cpu worker
// pool (Params.Pool, or a process-wide one), the same pool type the dense
// kernels use; feature detection and the purego build tag come from
// internal/cpu too, so `-tags purego` runs the pure-Go kernels here as well. Results are
// bit-identical for every value of Params.Threads: each (query, head) pair is
// computed by exactly one goroutine in a fixed order. Size mismatches are
// programmer errors and panic.
package attention
