package kvcache

import (
	"errors"
	"fmt"
)

// Type is the element type a layer stores its keys and values in. The zero value is F32.
//
//	F32   float32 (exact; the default)
//	BF16  bfloat16 (round to nearest even), 2 bytes an element
//	Q8    int8, symmetric: one float32 scale (max|x|/127) per group of min(32, HeadDim)
//	      consecutive elements of one token's head (the last group of a head may be shorter)
//	Q4    4-bit, asymmetric (KIVI-style): tokens gather in an open block of Q4Block float32
//	      slots; a full block is quantized with keys per channel over its Q4Block tokens and
//	      values per token per group of GroupSize elements (see layer_q4.go)
//
// A layer's Type never changes while it holds tokens; a full layer converted to a streaming
// one keeps its Type (the stored elements are moved, not requantized).
type Type uint8

// The element types; see [Type].
const (
	F32 Type = iota
	BF16
	Q8
	Q4
	numTypes
)

// ErrType reports an unknown element type name or value, or a type change on a layer that
// holds tokens.
var ErrType = errors.New("kvcache: invalid element type")

var typeNames = [numTypes]string{F32: "f32", BF16: "bf16", Q8: "q8", Q4: "q4"}

// String returns the type's flag name: "f32", "bf16", "q8" or "q4" (Type(n) for unknown values).
func (t Type) String() string {
	if t < numTypes {
		return typeNames[t]
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

// ParseType returns the Type named s ("f32", "bf16", "q8", "q4"), or an error wrapping
// [ErrType] naming s and the known names.
func ParseType(s string) (Type, error) {
	for t, n := range typeNames {
		if s == n {
			return Type(t), nil
		}
	}
	return 0, errorf(ErrType, "element type %q: want one of f32, bf16, q8, q4", s)
}

// Validate reports an error wrapping [ErrType] unless t is a known type that can store heads
// of s.HeadDim elements.
func (t Type) Validate(s Shape) error {
	if t >= numTypes {
		return errorf(ErrType, "element type %v: unknown", t)
	}
	if s.HeadDim <= 0 {
		return errorf(ErrShape, "element type %v: head_dim %d must be > 0", t, s.HeadDim)
	}
	return nil
}

// GroupSize is the number of consecutive elements of one token's head that share a Q8 scale:
// min(32, headDim).
func GroupSize(headDim int) int { return min(32, headDim) }

// groups returns the number of scale groups of one token's K (or V) row under Q8.
func groups(s Shape) int {
	gs := GroupSize(s.HeadDim)
	return s.KVHeads * ((s.HeadDim + gs - 1) / gs)
}

// SlotBytes returns the bytes one token slot of a layer of type t costs: K and V plus one int32
// position. F32: 2·Width·4 + 4; BF16: 2·Width·2 + 4; Q8: 2·(Width + 4·groups) + 4 with
// groups = KVHeads·ceil(HeadDim/GroupSize) scales per row. Q4 has no fixed slot size (a
// layer holds float32 open and sink slots and closed blocks); SlotBytes returns a closed
// block's bytes per token, rounded up, and Estimate and Usage count Q4 layers exactly.
func (t Type) SlotBytes(s Shape) int64 {
	w := int64(s.Width())
	switch t {
	case BF16:
		return 2*w*2 + 4
	case Q8:
		return 2*(w+4*int64(groups(s))) + 4
	case Q4:
		return (q4GroupBytes(s) + Q4Block - 1) / Q4Block
	}
	return 2*w*4 + 4
}
