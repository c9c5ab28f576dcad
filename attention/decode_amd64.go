//go:build amd64 && !purego

package attention

// qkHeadsAVX sets s[i][h] = q_h·k_i for i < n (n > 0) and every lane h < 8 (the
// eighth only when h8 != 0, else 0), key i at k + i·stride floats, queries qc as packQueries
// lays them out, d a positive multiple of 8; mx[h] is raised to the largest s[i][h]. Value
// row i (v + i·stride) is prefetched.
//
//go:noescape
func qkHeadsAVX(s, qc, k, v *float32, d, stride, n, h8 int, mx *float32)

// qkHeadsQ8AVX is qkHeadsAVX over int8 keys, element e of key i int8(k[i·stride+e]) times
// ks[i·scStride + e/32]; d a positive multiple of 32.
//
//go:noescape
func qkHeadsQ8AVX(s, qc *float32, k, v *byte, ks *float32, d, stride, scStride, n, h8 int, mx *float32)

// expHeadsAVX sets s[i][h] = exp(s[i][h] - m[h]) for i < n (n > 0), h < 8, and sum[h] to
// their sum over i (expTileAVX's polynomial).
//
//go:noescape
func expHeadsAVX(s *float32, n int, m, sum *float32)

// pvHeadsAVX adds Σ_i p[i][h]·v_i to o[h][:d] for i < n (n > 0), h < 7 (and 7 when
// h8 != 0), value i at v + i·stride floats, d a positive multiple of 8.
//
//go:noescape
func pvHeadsAVX(o, p, v *float32, d, stride, n, h8 int)

// pvHeadsQ8AVX is pvHeadsAVX over int8 values, element e of value i int8(v[i·stride+e])
// times vs[i·scStride + e/32]; d a positive multiple of 32.
//
//go:noescape
func pvHeadsQ8AVX(o, p *float32, v *byte, vs *float32, d, stride, scStride, n, h8 int)

// pvHeads2AVX is pvHeadsAVX for seven heads and d a positive multiple of 16, two column
// chunks a pass.
//
//go:noescape
func pvHeads2AVX(o, p, v *float32, d, stride, n int)

// qkHeadsQ8IAVX is qkHeadsQ8I's AVX2 kernel over nb > 0 blocks of eight keys (d a positive
// multiple of 32): queries broadcast as q8Query.pack leaves them in qbb, s room for 8·nb
// rows, scr 288 bytes. It prefetches the value rows v and the next tile's rows and scales at
// the byte offsets pfk, pfv (from k) and pfks, pfvs (from ks).
//
//go:noescape
func qkHeadsQ8IAVX(s *float32, qbb *int16, qs *float32, k, v *byte, ks *float32, d, stride, scStride, nb, pfk, pfv, pfks, pfvs, h8 int, mx *float32, scr *byte)

// expHeadsQ8AVX is expHeadsQ8's AVX2 kernel (n > 0).
//
//go:noescape
func expHeadsQ8AVX(s *float32, n int, m, sum *float32)

// pvWeightsQ8AVX is pvHeadsQ8I's weight quantization (n > 0): wq, f as pvHeadsQ8I describes
// them, wf [n][8] floats of scratch.
//
//go:noescape
func pvWeightsQ8AVX(wq *byte, f, wf, p, vs *float32, ng, scStride, n int)

// pvTransposeAVX interleaves the value rows of each quad of tokens (n > 0, the last quad's
// missing rows repeat row n-1): vt[i/4][c][j][i%4] = v[i·stride + 8c + j], d a positive
// multiple of 32.
//
//go:noescape
func pvTransposeAVX(vt, v *byte, d, stride, n int)

// pvAccQ8AVX adds each head's integer weighted value sums, scaled by f, to o (nq > 0 quads).
//
//go:noescape
func pvAccQ8AVX(o *float32, vt, wq *byte, f *float32, d, nq, h8 int)
