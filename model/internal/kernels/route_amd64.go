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

func asmMatVecRows(dst, w, x []float32, r0, r1, cols int) {
	if cols == 0 {
		clear(dst[r0:r1])
		return
	}
	k8 := cols &^ 7
	x = x[:cols]
	for r := r0; r < r1; r += 4 {
		R := min(4, r1-r)
		wr := w[r*cols : (r+R)*cols]
		tiles[0][R-1](&dst[r], 0, &x[0], cols, &wr[0], cols, k8, 0)
		if k8 < cols {
			for i := 0; i < R; i++ {
				dst[r+i] += goDot(x[k8:], wr[i*cols+k8:])
			}
		}
	}
}

var tilesBF16P = [4]func(out *float32, xp *float32, w *uint16, ldw int, k int){
	tileBF16P_1x1, tileBF16P_1x2, tileBF16P_1x3, tileBF16P_1x4,
}

// permuteX stores x's blocks of 16 values in the order tileBF16P reads them:
// x[0:4], x[8:12], x[4:8], x[12:16]. Values past the last full block are not
// copied (the tiles leave them to Go).
func permuteX(xp, x []float32) {
	for b := 0; b+16 <= len(x); b += 16 {
		s, d := x[b:b+16], xp[b:b+16]
		copy(d[0:4], s[0:4])
		copy(d[4:8], s[8:12])
		copy(d[8:12], s[4:8])
		copy(d[12:16], s[12:16])
	}
}

// asmMatVecBF16RowsP is asmMatVecBF16Rows reading a permuteX'd copy xp of x.
func asmMatVecBF16RowsP(dst []float32, w []uint16, x, xp []float32, r0, r1, cols int) {
	k16 := cols &^ 15
	if k16 == 0 {
		asmMatVecBF16Rows(dst, w, x, r0, r1, cols)
		return
	}
	x, xp = x[:cols], xp[:k16]
	for r := r0; r < r1; r += 4 {
		R := min(4, r1-r)
		wr := w[r*cols : (r+R)*cols]
		tilesBF16P[R-1](&dst[r], &xp[0], &wr[0], cols, k16)
		if k16 < cols {
			for i := 0; i < R; i++ {
				dst[r+i] += goDotBF16(x[k16:], wr[i*cols+k16:])
			}
		}
	}
}

func asmMatVecBF16Rows(dst []float32, w []uint16, x []float32, r0, r1, cols int) {
	if cols == 0 {
		clear(dst[r0:r1])
		return
	}
	k8 := cols &^ 7
	x = x[:cols]
	for r := r0; r < r1; r += 4 {
		R := min(4, r1-r)
		wr := w[r*cols : (r+R)*cols]
		tilesBF16[R-1](&dst[r], 0, &x[0], cols, &wr[0], cols, k8, 0)
		if k8 < cols {
			for i := 0; i < R; i++ {
				dst[r+i] += goDotBF16(x[k8:], wr[i*cols+k8:])
			}
		}
	}
}

// asmTile runs the T×R tile at tokens t.., rows r.. over columns [kb, kb+klen) of x
// (row stride cols) and of the weight rows wr (row stride ldw, starting at column kb
// of their first row), adding the columns past the last multiple of 8 in Go.
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
				out[ti*rows+i] += goDot(xt, wr[i*ldw+k8:])
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
