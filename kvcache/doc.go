// Package kvcache stores the per-layer key/value cache of one sequence for
// hybrid-attention (LightTransfer) inference.
//
// A [Cache] is a list of layers, one per model layer, each a value behind the
// [Layer] interface that knows its own [Policy] (which is also the mask its
// queries use) and its own bytes:
//
//	full.go       Full (the zero Policy): every token is kept, in blocks of
//	              BlockTokens tokens (default 256, see [WithBlockTokens]); a block
//	              holds K [block][Width], V [block][Width] and Pos [block].
//	streaming.go  Streaming(sink, window): the first Sink tokens ever appended
//	              stay in a sink segment, later tokens go to a ring of Window
//	              slots that overwrites its oldest token (sink 0: a plain sliding
//	              window). Sink+Window slots are allocated on the first append.
//
// Either kind stores its keys and values in an element [Type] chosen per kind of layer with
// [WithType] (F32 by default, BF16, Q8, Q4), through one store file per type:
//
//	store_f32.go  float32, exact
//	store_bf16.go bfloat16, round to nearest even
//	store_q8.go   int8 with one float32 scale per min(32, HeadDim) elements of a token's head
//	layer_q4.go   4-bit in blocks of Q4Block tokens (keys per channel over the block, values
//	              per token), the open block in float32: full and streaming Q4 layers in one
//	              kind of their own, since a block spans tokens
//
// [Layer.SegmentQ] (and [View.SegmentQ]) hand the stored bytes and scales to attention, which
// dequantizes them where they lie. A converted layer keeps its type.
//
// Keys are stored after RoPE at their original absolute positions; the cache
// never re-indexes or re-rotates anything. [Cache.View] exposes a layer as
// segments (k, v, pos) in arbitrary slot order; it satisfies the attention
// package's KV interface structurally. [Cache.Convert] turns a full layer into a
// streaming one in place (online lazy-layer identification), keeping the first
// Sink and the last Window-1 tokens and freeing the blocks at once.
//
// Memory accounting is exact: [Cache.Usage] reports allocated slots per layer,
// each slot costing [Type.SlotBytes] bytes of its layer's type (scales included; [SlotBytes]
// for F32), and [Estimate] predicts the same figure for a token count without allocating.
//
// A Cache is not safe for concurrent mutation; concurrent reads (View, Len,
// Usage) without a concurrent writer are safe.
package kvcache
