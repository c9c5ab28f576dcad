package loader

import (
	"encoding/binary"
	"github.com/lighttransfer/lighttransfer-go/internal/f16"
	"math"
)

// decodeF32 copies little-endian float32 values from src into dst.
func decodeF32(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
	}
}

// decodeF64 converts little-endian float64 values to float32 (round to nearest).
func decodeF64(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(src[8*i:])))
	}
}

// decodeBF16 widens little-endian bfloat16 values: the bits shifted left by 16.
func decodeBF16(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(src[2*i:])) << 16)
	}
}

// decodeF16 widens little-endian IEEE half-precision values exactly.
func decodeF16(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = f16.ToFloat32(binary.LittleEndian.Uint16(src[2*i:]))
	}
}
