package cuda

import "github.com/lighttransfer/lighttransfer-go/internal/bf16"

// BF16Bits rounds x to bfloat16 (round to nearest, ties to even; NaN stays NaN) and returns its
// bits, exactly as the kernels' __float2bfloat16_rn does: the project's one conversion
// (internal/bf16), which the model's bf16 weights use too.
func BF16Bits(x float32) uint16 { return bf16.FromFloat32(x) }

// RoundBF16 returns x rounded to the nearest bfloat16 value, as a float32.
func RoundBF16(x float32) float32 { return bf16.Round(x) }
