//go:build !amd64 || purego

package attention

// useAVX2 is false off amd64 and with the purego tag: the portable Go kernels run.
var useAVX2 = false

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
