package train

import "sync"

// The training products: c = op(a)·op(b) + beta·c on row-major float32 slices, blocked into
// tiles of gemmMR rows × gemmNR columns. op(b) is packed once per call into zero-padded panels
// of gemmNR columns ([k][gemmNR] each), a is read in place through a row and a column stride
// (so a transposed a costs nothing), and every tile sums its k products in order, one FMA
// (AVX2 route) or one multiply-add (Go route) at a time, then adds into c.

const (
	gemmMR = 4  // rows of a tile
	gemmNR = 16 // columns of a tile (two AVX2 vectors)
)

// gemmMinPar is the work (m·n·k multiply-adds) from which gemm splits rows across CPUs.
const gemmMinPar = 1 << 16

var packPool = sync.Pool{New: func() any { return new([]float32) }}

// gemm computes c = op(a)·op(b) + beta·c for row-major a, b, c (op = transpose when ta / tb);
// op(a) is m×k, op(b) k×n, c m×n. Rows are split across CPUs when the product is large.
func gemm(ta, tb bool, m, n, k int, a, b []float32, beta float32, c []float32) {
	gemmRun(ta, tb, m, n, k, a, b, beta, c, m*n*k >= gemmMinPar)
}

// gemmSerial is gemm on the calling goroutine (for kernels that are parallel already).
func gemmSerial(ta, tb bool, m, n, k int, a, b []float32, beta float32, c []float32) {
	gemmRun(ta, tb, m, n, k, a, b, beta, c, false)
}

func gemmRun(ta, tb bool, m, n, k int, a, b []float32, beta float32, c []float32, par bool) {
	if m == 0 || n == 0 {
		return
	}
	scaleC(c[:m*n], beta)
	if k == 0 {
		return
	}
	panels := (n + gemmNR - 1) / gemmNR
	bp := packPool.Get().(*[]float32)
	if cap(*bp) < panels*k*gemmNR {
		*bp = make([]float32, panels*k*gemmNR)
	}
	pk := (*bp)[:panels*k*gemmNR]
	packB(pk, b, tb, n, k)
	rsA, csA := k, 1
	if ta {
		rsA, csA = 1, m
	}
	gemmPanels(m, n, k, a, rsA, csA, pk, c, par)
	packPool.Put(bp)
}

// scaleC sets c = beta·c (0: cleared, 1: kept).
func scaleC(c []float32, beta float32) {
	switch beta {
	case 0:
		clear(c)
	case 1:
	default:
		for i := range c {
			c[i] *= beta
		}
	}
}

// gemmPanels adds a·op(b) into c (m×n, row-major), op(b) (k×n) packed by packB into pk and
// element (i, q) of a at a[i·rsA + q·csA]; rows of tiles are split across CPUs when par.
func gemmPanels(m, n, k int, a []float32, rsA, csA int, pk, c []float32, par bool) {
	panels := (n + gemmNR - 1) / gemmNR
	run := func(lo, hi int) { // row blocks [lo, hi)
		var tmp [gemmMR * gemmNR]float32
		for blk := lo; blk < hi; blk++ {
			i0 := blk * gemmMR
			rows := min(gemmMR, m-i0)
			for p := range panels {
				j0 := p * gemmNR
				cols := min(gemmNR, n-j0)
				bpan := pk[p*k*gemmNR : (p+1)*k*gemmNR]
				if rows == gemmMR && cols == gemmNR {
					tile(k, a[i0*rsA:], rsA, csA, bpan, c[i0*n+j0:], n, true)
					continue
				}
				if rows == gemmMR {
					tile(k, a[i0*rsA:], rsA, csA, bpan, tmp[:], gemmNR, false)
				} else {
					tileGo(rows, k, a[i0*rsA:], rsA, csA, bpan, tmp[:], gemmNR, false)
				}
				for r := range rows {
					cr := c[(i0+r)*n+j0:][:cols]
					for j := range cr {
						cr[j] += tmp[r*gemmNR+j]
					}
				}
			}
		}
	}
	blocks := (m + gemmMR - 1) / gemmMR
	if par {
		parallel(blocks, run)
	} else {
		run(0, blocks)
	}
}

// packB writes op(b) (k×n; b is n×k when tb) as panels of gemmNR columns, [k][gemmNR] each,
// zero beyond column n.
func packB(dst, b []float32, tb bool, n, k int) {
	panels := (n + gemmNR - 1) / gemmNR
	for p := range panels {
		j0 := p * gemmNR
		cols := min(gemmNR, n-j0)
		pan := dst[p*k*gemmNR : (p+1)*k*gemmNR]
		if tb {
			for j := range cols {
				row := b[(j0+j)*k:][:k]
				for q, v := range row {
					pan[q*gemmNR+j] = v
				}
			}
		} else {
			for q := range k {
				copy(pan[q*gemmNR:q*gemmNR+cols], b[q*n+j0:][:cols])
			}
		}
		if cols < gemmNR {
			for q := range k {
				clear(pan[q*gemmNR+cols : (q+1)*gemmNR])
			}
		}
	}
}

// tile adds a[0:gemmMR rows]·bp into c (gemmMR rows of stride ldc, gemmNR columns), or
// stores it there when !add: the AVX2 kernel where the CPU has it, else tileGo. k ≥ 1.
func tile(k int, a []float32, rsA, csA int, bp, c []float32, ldc int, add bool) {
	if useAVX2 {
		_ = a[(gemmMR-1)*rsA+(k-1)*csA]
		_ = bp[k*gemmNR-1]
		_ = c[(gemmMR-1)*ldc+gemmNR-1]
		tileAVX(k, &a[0], rsA, csA, &bp[0], &c[0], ldc, add)
		return
	}
	tileGo(gemmMR, k, a, rsA, csA, bp, c, ldc, add)
}

// tileGo adds rows×gemmNR of a·bp into c (or stores it, !add), element (i, q) of a at
// a[i·rsA + q·csA]: the portable twin of tileAVX (same order of sums per output, without
// fused multiply-adds).
func tileGo(rows, k int, a []float32, rsA, csA int, bp, c []float32, ldc int, add bool) {
	for i := range rows {
		var acc [gemmNR]float32
		for q := range k {
			x := a[i*rsA+q*csA]
			br := bp[q*gemmNR : (q+1)*gemmNR]
			for j := range acc {
				acc[j] += x * br[j]
			}
		}
		cr := c[i*ldc : i*ldc+gemmNR]
		if !add {
			copy(cr, acc[:])
			continue
		}
		for j := range cr {
			cr[j] += acc[j]
		}
	}
}

// gemmBand computes c = a·op(b) (add: c += a·op(b)) for the rows and products a band of a
// triangular matrix needs, on the calling goroutine: bp holds op(b) (k×n) packed by packB;
// element (i, q) of a is a[i·rsA + q·csA]; c has row stride ldc. For the gemmMR rows from i0,
// band returns the products [klo, khi) to sum and the columns [0, nhi) to write (columns
// beyond nhi within the last tile may be written too; callers ignore them).
func gemmBand(m, n, k int, a []float32, rsA, csA int, bp, c []float32, ldc int, add bool, band func(i0 int) (klo, khi, nhi int)) {
	var tmp [gemmMR * gemmNR]float32
	for i0 := 0; i0 < m; i0 += gemmMR {
		rows := min(gemmMR, m-i0)
		klo, khi, nhi := band(i0)
		for j0 := 0; j0 < nhi; j0 += gemmNR {
			cols := min(gemmNR, n-j0)
			if khi <= klo {
				if !add {
					for r := range rows {
						clear(c[(i0+r)*ldc+j0:][:cols])
					}
				}
				continue
			}
			ap := a[i0*rsA+klo*csA:]
			bpan := bp[(j0/gemmNR)*k*gemmNR+klo*gemmNR:]
			if rows == gemmMR && cols == gemmNR {
				tile(khi-klo, ap, rsA, csA, bpan, c[i0*ldc+j0:], ldc, add)
				continue
			}
			if rows == gemmMR {
				tile(khi-klo, ap, rsA, csA, bpan, tmp[:], gemmNR, false)
			} else {
				tileGo(rows, khi-klo, ap, rsA, csA, bpan, tmp[:], gemmNR, false)
			}
			for r := range rows {
				cr := c[(i0+r)*ldc+j0:][:cols]
				t := tmp[r*gemmNR:][:cols]
				if add {
					for j := range cr {
						cr[j] += t[j]
					}
				} else {
					copy(cr, t)
				}
			}
		}
	}
}
