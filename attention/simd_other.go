//go:build !amd64 || purego

package attention

// useAVX2 is false off amd64 and with the purego tag: the portable Go kernels run.
var useAVX2 = false

// useAVX512 is false off amd64 and with the purego tag.
var useAVX512 = false

func deqBF16TileAVX(dst *float32, src *byte, d, stride, n int) {
	panic("attention: no AVX2 kernel on this architecture")
}

func deqQ8TileAVX(dst *float32, src *byte, sc *float32, d, gs, stride, scStride, n int) {
	panic("attention: no AVX2 kernel on this architecture")
}

func deqBF16TileAVX512(dst *float32, src *byte, d, stride, n int) {
	panic("attention: no AVX-512 kernel on this architecture")
}

func deqQ8TileAVX512(dst *float32, src *byte, sc *float32, d, gs, stride, scStride, n int) {
	panic("attention: no AVX-512 kernel on this architecture")
}

func dotTileAVX(dst, q, k *float32, d, stride, nk int, scale float32) {
	panic("attention: no AVX2 kernel on this architecture")
}

func pvTileAVX(o, p, v *float32, d, stride, nk int) {
	panic("attention: no AVX2 kernel on this architecture")
}

func expTileAVX(row *float32, n int, m float32) float32 {
	panic("attention: no AVX2 kernel on this architecture")
}

func maxAVX(row *float32, n int) float32 {
	panic("attention: no AVX2 kernel on this architecture")
}

func dot2TileAVX(dst0, dst1, q0, q1, k *float32, d, stride, nk int, scale float32) {
	panic("attention: no AVX2 kernel on this architecture")
}

func deqQ4KAVX(dst *float32, src *byte, step, lo *float32, d, rowBytes, n int) {
	panic("attention: no AVX2 kernel on this architecture")
}

func deqQ4VAVX(dst *float32, src *byte, sc *float32, d, gs, rowBytes, scStride, ng, n int) {
	panic("attention: no AVX2 kernel on this architecture")
}
