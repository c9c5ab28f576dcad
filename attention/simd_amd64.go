//go:build amd64 && !purego

package attention

import "github.com/lighttransfer/lighttransfer-go/internal/cpu"

// useAVX2 selects the AVX2+FMA assembly kernels (internal/cpu's detection); tests flip it to
// check the portable Go kernels against them.
var useAVX2 = cpu.AVX2FMA

// useAVX512 selects the AVX-512 dequantization kernels (internal/cpu's detection: F, DQ, VL);
// tests flip it like useAVX2.
var useAVX512 = cpu.AVX512

// deqBF16TileAVX sets dst[t][i] to the bfloat16 at src + 2·(t·stride+i) for t < n, i < d
// (a positive multiple of 8).
//
//go:noescape
func deqBF16TileAVX(dst *float32, src *byte, d, stride, n int)

// deqQ8TileAVX sets dst[t][i] = int8(src[t·stride+i]) · sc[t·scStride + i/gs] for t < n,
// i < d; d and gs positive multiples of 8.
//
//go:noescape
func deqQ8TileAVX(dst *float32, src *byte, sc *float32, d, gs, stride, scStride, n int)

// deqBF16TileAVX512 is deqBF16TileAVX for d a positive multiple of 16.
//
//go:noescape
func deqBF16TileAVX512(dst *float32, src *byte, d, stride, n int)

// deqQ8TileAVX512 is deqQ8TileAVX for d and gs positive multiples of 16.
//
//go:noescape
func deqQ8TileAVX512(dst *float32, src *byte, sc *float32, d, gs, stride, scStride, n int)

// dotTileAVX sets dst[j] = scale·q·k_j for j < nk (a multiple of 4), key j at
// k + j·stride floats; d (a multiple of 8) floats per vector.
//
//go:noescape
func dotTileAVX(dst, q, k *float32, d, stride, nk int, scale float32)

// pvTileAVX adds Σ_j p[j]·v_j to o[:d] for j < nk, value j at v + j·stride
// floats; d is a multiple of 8.
//
//go:noescape
func pvTileAVX(o, p, v *float32, d, stride, nk int)

// expTileAVX sets row[i] = exp(row[i]-m) for i < n (a multiple of 8, every
// row[i] <= m) and returns their sum; arguments below -87.3 give 0.
//
//go:noescape
func expTileAVX(row *float32, n int, m float32) float32

// maxAVX returns the maximum of row[:n], n a positive multiple of 8.
//
//go:noescape
func maxAVX(row *float32, n int) float32

// dot2TileAVX sets dst0[j] = scale·q0·k_j and dst1[j] = scale·q1·k_j for
// j < nk (a multiple of 4), key j at k + j·stride floats; d is a positive
// multiple of 8.
//
//go:noescape
func dot2TileAVX(dst0, dst1, q0, q1, k *float32, d, stride, nk int, scale float32)

// deqQ4KAVX sets dst[t][i] = code(t, i)·step[i] + lo[i] for t < n, i < d (a positive multiple
// of 8), code(t, i) nibble i of the row at src + t·rowBytes, the low nibble first.
//
//go:noescape
func deqQ4KAVX(dst *float32, src *byte, step, lo *float32, d, rowBytes, n int)

// deqQ4VAVX sets dst[t][i] = code(t, i)·sc[t·scStride + i/gs] + sc[t·scStride + ng + i/gs]
// for t < n, i < d; d and gs positive multiples of 8.
//
//go:noescape
func deqQ4VAVX(dst *float32, src *byte, sc *float32, d, gs, rowBytes, scStride, ng, n int)
