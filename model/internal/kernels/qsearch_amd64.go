//go:build amd64 && !purego

package kernels

// search8 is goSearch8 in AVX2 assembly (qsearch_amd64.s), with the same bits.
//
//go:noescape
func search8(out *float32, x *float32, inv *float32, s *float32, n int)

// searchLanes8 fills out ([n][3][8]) as goSearch8 does, with the assembly kernel where AVX2
// is present and the assembly routes are on.
func searchLanes8(out []float32, x *[QBlock]float32, inv, s []float32) {
	n := len(inv)
	if !useAsm || !asmAvailable || n == 0 {
		goSearch8(out, x, inv, s)
		return
	}
	_ = out[24*n-1]
	_ = s[n-1]
	search8(&out[0], &x[0], &inv[0], &s[0], n)
}
