package kvcache

// Layer is one model layer's cache. Each kind of layer is its own type in its own file
// (full.go, streaming.go), storing its keys and values in an element [Type] through one store
// file per type (store_f32.go, store_bf16.go, store_q8.go); Q4 layers, whose blocks span
// tokens, are a kind of their own (layer_q4.go). A Layer knows its own [Policy],
// which is also the mask its queries use.
//
// NumSegments and Segment present the tokens held as segments in arbitrary slot order (k and v
// [len(pos)][Width], pos absolute positions); they satisfy the attention package's KV
// interface. Segment returns the float32 keys and values of an F32 layer and nil k, v for
// other types; SegmentQ returns every type as stored (attention's QKV interface): elem is the
// Type as an int, k and v the encoded elements ([len(pos)][Width] float32, bfloat16 or int8
// values, little-endian), ks and vs the Q8 scales ([len(pos)][KVHeads·ceil(HeadDim/GroupSize)],
// nil for other types). A Q4 layer's segments are its float32 sink and open block (elem F32)
// and one segment per closed block (elem Q4, codes and scales as attention.ElemQ4 describes).
// The slices alias the layer: after a mutation, ask again.
//
// Append's sizes are checked by [Cache.Append]; calling it directly with k or v shorter than
// len(pos)·Width panics.
type Layer interface {
	Policy() Policy
	Type() Type
	Len() int // tokens held now
	NumSegments() int
	Segment(i int) (k, v []float32, pos []int32)
	SegmentQ(i int) (elem int, k, v []byte, ks, vs []float32, pos []int32)
	Append(k, v []float32, pos []int32)
	// Convert returns a layer with policy p and the same Type holding what that policy would
	// keep of this layer's tokens (moved exactly, not requantized), releasing this layer's
	// storage; it fails with ErrPolicy when the conversion is not supported.
	Convert(p Policy) (Layer, error)
	Capacity() int    // token slots allocated
	Bytes() int64     // bytes allocated (Capacity slots, scales included)
	DataBytes() int64 // bytes of the keys, values and scales held (what one attention pass reads)
	Clone() Layer     // deep copy, same allocation
	Reset()           // drop the tokens, keep the allocation for reuse
}

// newLayer returns an empty layer of the kind p asks for, storing type t.
func newLayer(s Shape, p Policy, t Type, blockTokens int) Layer {
	if t == Q4 {
		return newQ4Layer(s, p)
	}
	if p.IsStreaming() {
		return newStreaming(s, t, p)
	}
	return newFull(s, t, blockTokens)
}

// dataBytes is the K, V and scale bytes of n tokens of type t (the slot size less the position).
func dataBytes(s Shape, t Type, n int) int64 { return int64(n) * (t.SlotBytes(s) - 4) }
