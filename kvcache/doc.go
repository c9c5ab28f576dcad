// Package kvcache stores the per-layer key/value cache of one sequence for
// hybrid-attention (LightTransfer) inference.
//
// Every model layer has its own store with a [Policy]:
//
//   - Full (the zero Policy): every token is kept. Storage grows in fixed-size
//     blocks of BlockTokens tokens (default 256, see [WithBlockTokens]); a block
//     holds K [block][Width], V [block][Width] and Pos [block]. Tokens are never
//     allocated one by one.
//   - Streaming(sink, window): the first Sink tokens ever appended stay in a sink
//     segment, later tokens go to a ring of Window slots that overwrites its
//     oldest token. Sink+Window slots are allocated on the first append.
//
// Keys are stored after RoPE at their original absolute positions; the cache
// never re-indexes or re-rotates anything. [Cache.View] exposes a layer as
// segments (k, v, pos) in arbitrary slot order; it satisfies the attention
// package's KV interface structurally. [Cache.Convert] turns a full layer into a
// streaming one in place (online lazy-layer identification), keeping the first
// Sink and the last Window-1 tokens and freeing the blocks at once.
//
// Memory accounting is exact: [Cache.Usage] reports allocated slots per layer,
// each slot costing [SlotBytes] bytes, and [Estimate] predicts the same figure
// for a token count without allocating.
//
// A Cache is not safe for concurrent mutation; concurrent reads (View, Len,
// Usage) without a concurrent writer are safe.
package kvcache
