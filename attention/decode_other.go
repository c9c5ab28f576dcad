//go:build !amd64 || purego

package attention

func qkHeadsAVX(s, qc, k, v *float32, d, stride, n, h8 int, mx *float32) {
	panic("attention: no AVX2 kernel on this architecture")
}

func qkHeadsQ8AVX(s, qc *float32, k, v *byte, ks *float32, d, stride, scStride, n, h8 int, mx *float32) {
	panic("attention: no AVX2 kernel on this architecture")
}

func expHeadsAVX(s *float32, n int, m, sum *float32) {
	panic("attention: no AVX2 kernel on this architecture")
}

func pvHeadsAVX(o, p, v *float32, d, stride, n, h8 int) {
	panic("attention: no AVX2 kernel on this architecture")
}

func pvHeadsQ8AVX(o, p *float32, v *byte, vs *float32, d, stride, scStride, n, h8 int) {
	panic("attention: no AVX2 kernel on this architecture")
}

func pvHeads2AVX(o, p, v *float32, d, stride, n int) {
	panic("attention: no AVX2 kernel on this architecture")
}

func qkHeadsQ8IAVX(s *float32, qbb *int16, qs *float32, k, v *byte, ks *float32, d, stride, scStride, nb, pfk, pfv, pfks, pfvs, h8 int, mx *float32, scr *byte) {
	panic("attention: no AVX2 kernel on this architecture")
}

func expHeadsQ8AVX(s *float32, n int, m, sum *float32) {
	panic("attention: no AVX2 kernel on this architecture")
}

func pvWeightsQ8AVX(wq *byte, f, wf, p, vs *float32, ng, scStride, n int) {
	panic("attention: no AVX2 kernel on this architecture")
}

func pvTransposeAVX(vt, v *byte, d, stride, n int) {
	panic("attention: no AVX2 kernel on this architecture")
}

func pvAccQ8AVX(o *float32, vt, wq *byte, f *float32, d, nq, h8 int) {
	panic("attention: no AVX2 kernel on this architecture")
}
