package cuda

import "math"

// BF16Bits rounds x to bfloat16 (round to nearest, ties to even; NaN stays NaN) and returns its
// bits, exactly as the kernels' __float2bfloat16_rn does.
func BF16Bits(x float32) uint16 {
	b := math.Float32bits(x)
	if b&0x7fffffff > 0x7f800000 { // NaN: keep it quiet
		return uint16(b>>16) | 0x40
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// RoundBF16 returns x rounded to the nearest bfloat16 value, as a float32.
func RoundBF16(x float32) float32 { return math.Float32frombits(uint32(BF16Bits(x)) << 16) }
