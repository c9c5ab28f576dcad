// Package bf16 is the project's one bfloat16 conversion, shared by the model's weights and the
// cuda package's device caches: round to nearest, ties to even, NaN kept a (quiet) NaN, as the
// kernels' __float2bfloat16_rn does. Standard library only.
package bf16

import "math"

// FromFloat32 rounds x to the nearest bfloat16 and returns its bits (the high 16 bits of a
// float32).
func FromFloat32(x float32) uint16 {
	u := math.Float32bits(x)
	if u&0x7fffffff > 0x7f800000 { // NaN: keep it quiet
		return uint16(u>>16) | 0x40
	}
	u += 0x7fff + (u>>16)&1
	return uint16(u >> 16)
}

// ToFloat32 widens bfloat16 bits to the float32 they stand for (exact).
func ToFloat32(b uint16) float32 { return math.Float32frombits(uint32(b) << 16) }

// Round returns x rounded to the nearest bfloat16 value, as a float32.
func Round(x float32) float32 { return ToFloat32(FromFloat32(x)) }
