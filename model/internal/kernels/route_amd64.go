//go:build amd64 && !purego

package kernels

import "github.com/lighttransfer/lighttransfer-go/internal/cpu"

// asmAvailable reports whether this CPU runs the AVX2/FMA kernels (internal/cpu's detection).
var asmAvailable = cpu.AVX2FMA

// avx512Available reports whether this CPU also runs the AVX-512 MatMul tiles.
var avx512Available = cpu.AVX512

// useAsm selects the assembly route and useAVX512 its AVX-512 MatMul tiles; tests
// switch them to compare the routes.
var (
	useAsm    = asmAvailable
	useAVX512 = avx512Available
)

type tileFunc func(out *float32, ldo int, x *float32, ldx int, w *float32, ldw int, k int, acc int)

// tiles[T-1][R-1] computes a T-token × R-row tile with AVX2 (T <= 3, k a multiple
// of 8); tilesZ with AVX-512 (T <= 4, k a multiple of 16).
var (
	tiles = [4][4]tileFunc{
		{tileF32_1x1, tileF32_1x2, tileF32_1x3, tileF32_1x4},
		{tileF32_2x1, tileF32_2x2, tileF32_2x3, tileF32_2x4},
		{tileF32_3x1, tileF32_3x2, tileF32_3x3, tileF32_3x4},
	}
	tilesZ = [4][4]tileFunc{
		{tileZ_1x1, tileZ_1x2, tileZ_1x3, tileZ_1x4},
		{tileZ_2x1, tileZ_2x2, tileZ_2x3, tileZ_2x4},
		{tileZ_3x1, tileZ_3x2, tileZ_3x3, tileZ_3x4},
		{tileZ_4x1, tileZ_4x2, tileZ_4x3, tileZ_4x4},
	}
)

// tileHeight is the number of tokens per MatMul tile on the selected route.
func tileHeight() int {
	if useAVX512 {
		return 4
	}
	return 3
}

var tilesBF16 = [4]func(out *float32, ldo int, x *float32, ldx int, w *uint16, ldw int, k int, acc int){
	tileBF16_1x1, tileBF16_1x2, tileBF16_1x3, tileBF16_1x4,
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// The asm kernels take raw pointers; the callers below have checked every index
// they touch (the exported methods validated the slice lengths), and a pointer one
// past a row is never formed because k8 <= klen.
//
// Every product, matrix-vector or matrix-matrix, computes each output the same way on a
// route: columns in blocks of kc, each block's vector part by one accumulator per output
// (tile in asm/main.go) added to the earlier blocks' sum, then the block's tail columns
// added one by one in Go (goDotAcc). So an output's bits depend on its row and token only,
// never on the tile, the number of tokens, the row's place in a tile or the split of rows
// over workers.

// asmMatVecRows computes rows [r0, r1) of MatVec: the single-token case of asmMatMulRows,
// walking each group of rows through all its column blocks before the next group. With AVX2
// the groups are of 8 rows (mvF32_1x8, the sums of tileF32_1xR), the last ones of up to 4.
func asmMatVecRows(dst, w, x []float32, r0, r1, cols int) {
	if cols == 0 {
		clear(dst[r0:r1])
		return
	}
	r := r0
	if !useAVX512 {
		for ; r+mvRows <= r1; r += mvRows {
			for kb := 0; kb < cols; kb += kc {
				klen := min(kc, cols-kb)
				k8 := klen &^ 7
				wr := w[r*cols+kb : (r+mvRows-1)*cols+kb+klen]
				xk := x[kb : kb+klen]
				switch {
				case k8 > 0:
					mvF32_1x8(&dst[r], &xk[0], &wr[0], cols, k8, b2i(kb > 0))
				case kb == 0:
					clear(dst[r : r+mvRows])
				default:
					addZero(dst[r : r+mvRows])
				}
				for i := 0; k8 < klen && i < mvRows; i++ {
					dst[r+i] = goDotAcc(dst[r+i], xk[k8:], wr[i*cols+k8:])
				}
			}
		}
	}
	for ; r < r1; r += 4 {
		R := min(4, r1-r)
		for kb := 0; kb < cols; kb += kc {
			klen := min(kc, cols-kb)
			asmTile(dst, x, w[r*cols+kb:(r+R-1)*cols+kb+klen], cols, 1, R, 0, 0, cols, r, kb, klen, kb > 0)
		}
	}
}

// mvRows is the row count of the AVX2 matrix-vector tiles (mvF32_1x8, mvBF16_1x8).
const mvRows = 8

// addZero adds +0 to each value, as a tile does over no columns (it turns -0 into +0).
func addZero(v []float32) {
	for i := range v {
		v[i] += 0
	}
}

// asmMatVecBF16Rows computes rows [r0, r1) of MatVecBF16 with the bits of asmMatVecRows
// on the widened weights: with AVX2 the mvBF16 and tileBF16 kernels widen in registers;
// with AVX-512 each 4-row block is widened into scratch (4·kc values) for the AVX-512
// float32 tiles, as asmMatMulBF16Rows does.
func asmMatVecBF16Rows(dst []float32, w []uint16, x []float32, r0, r1, cols int, scratch []float32) {
	if cols == 0 {
		clear(dst[r0:r1])
		return
	}
	if useAVX512 {
		asmMatMulBF16Rows(dst, x, w, 1, 0, cols, r0, r1, scratch)
		return
	}
	for r := r0; r < r1; {
		R := min(4, r1-r)
		if r+mvRows <= r1 {
			R = mvRows
		}
		for kb := 0; kb < cols; kb += kc {
			klen := min(kc, cols-kb)
			k8 := klen &^ 7
			wr := w[r*cols+kb : (r+R-1)*cols+kb+klen]
			xk := x[kb : kb+klen]
			switch {
			case k8 == 0 && kb == 0:
				clear(dst[r : r+R])
			case k8 == 0:
				addZero(dst[r : r+R])
			case R == mvRows:
				mvBF16_1x8(&dst[r], &xk[0], &wr[0], cols, k8, b2i(kb > 0))
			default:
				tilesBF16[R-1](&dst[r], 0, &xk[0], cols, &wr[0], cols, k8, b2i(kb > 0))
			}
			for i := 0; k8 < klen && i < R; i++ {
				dst[r+i] = goDotBF16Acc(dst[r+i], xk[k8:], wr[i*cols+k8:])
			}
		}
		r += R
	}
}

// asmTile runs the T×R tile at tokens t.., rows r.. over columns [kb, kb+klen) of x
// (row stride cols) and of the weight rows wr (row stride ldw, starting at column kb
// of their first row), adding the columns past the last multiple of 8 (16 with AVX-512) in Go.
func asmTile(dst, x []float32, wr []float32, ldw, T, R, t, rows, cols, r, kb, klen int, acc bool) {
	tbl, k8 := &tiles, klen&^7
	if useAVX512 {
		tbl, k8 = &tilesZ, klen&^15
	}
	xo := t*cols + kb
	out := dst[t*rows+r : (t+T-1)*rows+r+R]
	_ = x[xo+(T-1)*cols+klen-1]
	_ = wr[(R-1)*ldw+klen-1]
	tbl[T-1][R-1](&out[0], rows, &x[xo], cols, &wr[0], ldw, k8, b2i(acc))
	if k8 < klen {
		for ti := 0; ti < T; ti++ {
			xt := x[xo+ti*cols+k8 : xo+ti*cols+klen]
			for i := 0; i < R; i++ {
				out[ti*rows+i] = goDotAcc(out[ti*rows+i], xt, wr[i*ldw+k8:])
			}
		}
	}
}

func asmMatMulRows(dst, x, w []float32, n, rows, cols, r0, r1 int) {
	if cols == 0 {
		zeroRows(dst, n, rows, r0, r1)
		return
	}
	th := tileHeight()
	for kb := 0; kb < cols; kb += kc {
		klen := min(kc, cols-kb)
		for t0 := 0; t0 < n; t0 += tb {
			t1 := min(t0+tb, n)
			for r := r0; r < r1; r += 4 {
				R := min(4, r1-r)
				wr := w[r*cols+kb : (r+R-1)*cols+kb+klen]
				for t := t0; t < t1; t += th {
					asmTile(dst, x, wr, cols, min(th, t1-t), R, t, rows, cols, r, kb, klen, kb > 0)
				}
			}
		}
	}
}

func asmMatMulBF16Rows(dst, x []float32, w []uint16, n, rows, cols, r0, r1 int, scratch []float32) {
	if cols == 0 {
		zeroRows(dst, n, rows, r0, r1)
		return
	}
	scratch = scratch[:4*kc]
	th := tileHeight()
	for kb := 0; kb < cols; kb += kc {
		klen := min(kc, cols-kb)
		k8 := klen &^ 7
		for t0 := 0; t0 < n; t0 += tb {
			t1 := min(t0+tb, n)
			for r := r0; r < r1; r += 4 {
				R := min(4, r1-r)
				for i := 0; i < R; i++ {
					src := w[(r+i)*cols+kb : (r+i)*cols+kb+klen]
					s := scratch[i*kc : i*kc+klen]
					if k8 > 0 {
						widenBF16(&s[0], &src[0], k8)
					}
					for c := k8; c < klen; c++ {
						s[c] = bf16(src[c])
					}
				}
				wr := scratch[:(R-1)*kc+klen]
				for t := t0; t < t1; t += th {
					asmTile(dst, x, wr, kc, min(th, t1-t), R, t, rows, cols, r, kb, klen, kb > 0)
				}
			}
		}
	}
}

// asmSiLUMul runs siluMul over the longest multiple of 8 elements and returns that count
// (0 on the Go route).
func asmSiLUMul(dst, gate, up []float32) int {
	n := len(gate) &^ 7
	if !useAsm || n == 0 {
		return 0
	}
	_, _ = dst[n-1], up[n-1]
	siluMul(&dst[0], &gate[0], &up[0], n)
	return n
}
