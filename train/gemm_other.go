//go:build !amd64 || purego

package train

// useAVX2 is false off amd64 and with the purego tag: the Go tile kernel runs.
var useAVX2 = false

func tileAVX(k int, a *float32, rsA, csA int, bp, c *float32, ldc int, add bool) {
	panic("train: no AVX2 kernel on this architecture")
}

func expAffineAVX(dst, src *float32, n int, a, b float32) float32 {
	panic("train: no AVX2 kernel on this architecture")
}
