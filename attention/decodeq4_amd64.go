//go:build amd64 && !purego

package attention

// packQueriesQ4AVX is packQueriesQ4's AVX2 kernel (d a positive multiple of 64).
//
//go:noescape
func packQueriesQ4AVX(qi *byte, qs, bias, qc, st, lo *float32, d int)

// qkHeadsQ4IAVX is qkHeadsQ4I's AVX2 kernel (d a positive multiple of 64, n > 0): eight
// heads when h8 != 0, else seven (the eighth lane's scores 0).
//
//go:noescape
func qkHeadsQ4IAVX(s *float32, qi *byte, qs, bias *float32, k, v *byte, d, stride, n, h8 int, mx *float32)

// pvWeightsQ4AVX is pvHeadsQ4I's weight rounding (ng even, 0 < n <= keyTile) for every
// head lane: f[gi][h], b[gi][h] the scale and bias of group gi, and
// wq[gi/2][i/2][h] the dword of bytes wq(2i', gi even), wq(2i'+1, gi even), wq(2i', gi odd),
// wq(2i'+1, gi odd) for pair i' (0 for the token past an odd n); wf is [2][n][8] floats of
// scratch.
//
//go:noescape
func pvWeightsQ4AVX(wq *byte, f, b, wf, p, vs *float32, ng, vsStride, loOff, n int)

// pvTransposeQ4AVX unpacks the value codes of each pair of tokens (the pair past an odd n
// repeats row n-1) and interleaves them: vt[i/2][4·c64 + k][lane][2j + i%2] is the code of
// column 64·c64 + 32·lane + 8k + j of token i, d a positive multiple of 64.
//
//go:noescape
func pvTransposeQ4AVX(vt, v *byte, d, stride, n int)

// pvAccQ4AVX adds each head's integer weighted code sums (uint16 over the tile), scaled by f
// and offset by b, to o (np > 0 pairs, h < 7 and 7 when h8 != 0).
//
//go:noescape
func pvAccQ4AVX(o *float32, vt, wq *byte, f, b *float32, d, np, h8 int)
