//go:build !amd64 || purego

package attention

func packQueriesQ4AVX(qi *byte, qs, bias, qc, st, lo *float32, d int) {
	panic("attention: no AVX2 kernel on this architecture")
}

func qkHeadsQ4IAVX(s *float32, qi *byte, qs, bias *float32, k, v *byte, d, stride, n, h8 int, mx *float32) {
	panic("attention: no AVX2 kernel on this architecture")
}

func pvWeightsQ4AVX(wq *byte, f, b, wf, p, vs *float32, ng, vsStride, loOff, n int) {
	panic("attention: no AVX2 kernel on this architecture")
}

func pvTransposeQ4AVX(vt, v *byte, d, stride, n int) {
	panic("attention: no AVX2 kernel on this architecture")
}

func pvAccQ4AVX(o *float32, vt, wq *byte, f, b *float32, d, np, h8 int) {
	panic("attention: no AVX2 kernel on this architecture")
}
