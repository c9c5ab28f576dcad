package kvcache

// Layer is one model layer's cache. Each kind of layer is its own type in its own file
// (full.go, streaming.go); the element type of the stored keys and values is part of the kind,
// so a reduced-precision layer is one more file implementing Layer. A Layer knows its own
// [Policy], which is also the mask its queries use.
//
// NumSegments and Segment present the tokens held as float32 segments in arbitrary slot order
// (k and v [len(pos)][Width], pos absolute positions); they satisfy the attention package's KV
// interface. The slices alias the layer: after a mutation, ask again.
//
// Append's sizes are checked by [Cache.Append]; calling it directly with k or v shorter than
// len(pos)·Width panics.
type Layer interface {
	Policy() Policy
	Len() int // tokens held now
	NumSegments() int
	Segment(i int) (k, v []float32, pos []int32)
	Append(k, v []float32, pos []int32)
	// Convert returns a layer with policy p holding what that policy would keep of this
	// layer's tokens, releasing this layer's storage; it fails with ErrPolicy when the
	// conversion is not supported.
	Convert(p Policy) (Layer, error)
	Capacity() int    // token slots allocated
	Bytes() int64     // bytes allocated (Capacity slots)
	DataBytes() int64 // bytes of the keys and values held (what one attention pass reads)
	Clone() Layer     // deep copy, same allocation
	Reset()           // drop the tokens, keep the allocation for reuse
}

// newLayer returns an empty layer of the kind p asks for.
func newLayer(s Shape, p Policy, blockTokens int) Layer {
	if p.IsStreaming() {
		return newStreaming(s.Width(), p)
	}
	return newFull(s.Width(), blockTokens)
}
