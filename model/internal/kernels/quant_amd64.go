//go:build amd64 && !purego

package kernels

import "github.com/lighttransfer/lighttransfer-go/internal/cpu"

// The quantized matrix-vector kernels need F16C for their float16 scales besides AVX2;
// vnniAvailable adds AVX-512 VNNI (VPDPBUSD). useQAsm and useVNNI select the routes; tests
// switch them (useQAsm only when useAsm is set too).
var (
	qAsmAvailable = cpu.AVX2FMA && cpu.F16C
	vnniAvailable = cpu.VNNI
	useVNNI       = vnniAvailable
)

type qdot8Func func(out *float32, xq *int8, xd *float32, w *byte, ldw int, d *uint16, ldd int, nb int)

type qmm8Func func(out *float32, ldo int, xq *int8, ldx int, xd *float32, ldxd int, w *byte, ldw int, d *uint16, ldd int, nb int)

type qg4Func func(out *float32, ldo int, xq *int8, ldx int, xd *float32, xs *float32, ldxd int, w *byte, ldw int, d *uint16, ldd int, m *uint16, ldm int, nb int)

var (
	qdot8  = [4]qdot8Func{qdot8_1x1, qdot8_1x2, qdot8_1x3, qdot8_1x4}
	qdot8V = [4]qdot8Func{qdot8V_1x1, qdot8V_1x2, qdot8V_1x3, qdot8V_1x4}
	// qmm tiles [R-1][T-1]: R weight rows × T activation rows.
	qmm8  = [4][2]qmm8Func{{qmm8_1x1, qmm8_1x2}, {qmm8_2x1, qmm8_2x2}, {qmm8_3x1, qmm8_3x2}, {qmm8_4x1, qmm8_4x2}}
	qmm8V = [4][2]qmm8Func{{qmm8V_1x1, qmm8V_1x2}, {qmm8V_2x1, qmm8V_2x2}, {qmm8V_3x1, qmm8V_3x2}, {qmm8V_4x1, qmm8V_4x2}}
	// qg4 tiles [T-1]: one group of 8 interleaved 4-bit weight rows × T activation rows.
	qg4  = [4]qg4Func{qg4_1x1, qg4_1x2, qg4_1x3, qg4_1x4}
	qg4V = [4]qg4Func{qg4V_1x1, qg4V_1x2, qg4V_1x3, qg4V_1x4}
	// qg4Dec are the decode tiles [G-1] of G groups, prefetching ahead on each group.
	qg4Dec  = [2]qg4Func{qg4P2048_1x1, qg4P2048_2x1}
	qg4DecV = [2]qg4Func{qg4VP2048_1x1, qg4VP2048_2x1}
)

// q4DecodeTwo is the group size (bytes, Blocks·128) from which decode runs two groups per
// tile: measured on the Zen 3 machine over matrices too large for the caches, long rows
// (1536×8960: 21 against 18 GB/s) stream faster two groups at a time and short ones
// (4864×896: 21 against 17; 8960×1536: 18.6 against 14–16) one group at a time.
const q4DecodeTwo = 16 << 10

// qmmL2 is the activation bytes a token block of the matrix-matrix route keeps in L2 while
// every weight row of the chunk passes through it.
const qmmL2 = 192 << 10

// asmMatMulQRows computes rows [r0, r1) of MatMulQ for the n activation rows of x: per
// block of tokens that fits qmmL2, 4 weight rows at a time against 2 activation rows at a
// time for 8 bits, a group of 8 rows against 4 activation rows for 4 bits (asmQ4Rows).
// Falls back to Go (the same bits as the Go MatVecQ) without F16C.
func asmMatMulQRows(dst []float32, w *Quant, x *QX, n, r0, r1 int, scratch []float32) {
	if !qAsmAvailable {
		goMatMulQRows(dst, w, x, n, r0, r1)
		return
	}
	rows, nb := w.Rows, w.Blocks()
	if nb == 0 {
		for t := 0; t < n; t++ {
			clear(dst[t*rows+r0 : t*rows+r1])
		}
		return
	}
	ldx, ldxd := x.Blocks*QBlock, x.MStride
	_ = x.Q[n*ldx-1]
	_ = x.D[n*ldxd-1]
	_ = dst[(n-1)*rows+r1-1]
	tbq := max(2, qmmL2/(ldx+8*ldxd)) &^ 1
	if w.Bits == 8 {
		tbl := &qmm8
		if useVNNI {
			tbl = &qmm8V
		}
		ldw := nb * QBlock
		_ = w.Q[r1*ldw-1]
		_ = w.D[r1*nb-1]
		for t0 := 0; t0 < n; t0 += tbq {
			t1 := min(t0+tbq, n)
			for r := r0; r < r1; r += 4 {
				R := min(4, r1-r)
				for t := t0; t < t1; t += 2 {
					T := min(2, t1-t)
					tbl[R-1][T-1](&dst[t*rows+r], rows, &x.Q[t*ldx], ldx, &x.D[t*ldxd], ldxd, &w.Q[r*ldw], ldw, &w.D[r*nb], nb, nb)
				}
			}
		}
		return
	}
	asmQ4Rows(dst, w, x, n, r0, r1, max(4, qmmL2/(ldx+8*ldxd))&^3, scratch)
}

// asmQ4Rows computes rows [r0, r1) of a 4-bit product for the n activation rows of x
// into dst ([n][w.Rows]), tb activation rows at a time (a multiple of 4, or n): the
// interleaved groups with the qg4 tiles (a group cut by r0 or r1 is computed whole into
// scratch, at least 32 values, and its rows in range copied), the rows past the last group
// in Go. Decode (n = 1) runs the prefetching tiles, two groups per tile on long rows.
func asmQ4Rows(dst []float32, w *Quant, x *QX, n, r0, r1, tb int, scratch []float32) {
	tbl := &qg4
	if useVNNI {
		tbl = &qg4V
	}
	rows, nb := w.Rows, w.Blocks()
	ldx, ldxd := x.Blocks*QBlock, x.MStride
	ldw, ldd, ldm := nb*128, nb*8, w.MStride()*8
	gr := w.grouped()
	_ = x.Q[n*ldx-1]
	_ = x.S[n*ldxd-1]
	_ = scratch[31]
	for t0 := 0; t0 < n; t0 += tb {
		t1 := min(t0+tb, n)
		for r := r0 &^ 7; r < min(r1, gr); r += 8 {
			g := r / 8
			if n == 1 && r >= r0 && r+8 <= min(r1, gr) {
				G := 1
				if ldw >= q4DecodeTwo && r+16 <= min(r1, gr) {
					G = 2
				}
				f := qg4Dec[G-1]
				if useVNNI {
					f = qg4DecV[G-1]
				}
				f(&dst[r], 0, &x.Q[0], ldx, &x.D[0], &x.S[0], ldxd, &w.Q[g*ldw], ldw, &w.D[g*ldd], ldd, &w.M[g*ldm], ldm, nb)
				r += 8 * (G - 1)
				continue
			}
			whole := r >= r0 && r+8 <= r1
			for t := t0; t < t1; t += 4 {
				T := min(4, t1-t)
				if whole {
					tbl[T-1](&dst[t*rows+r], rows, &x.Q[t*ldx], ldx, &x.D[t*ldxd], &x.S[t*ldxd], ldxd, &w.Q[g*ldw], ldw, &w.D[g*ldd], ldd, &w.M[g*ldm], ldm, nb)
					continue
				}
				tbl[T-1](&scratch[0], 8, &x.Q[t*ldx], ldx, &x.D[t*ldxd], &x.S[t*ldxd], ldxd, &w.Q[g*ldw], ldw, &w.D[g*ldd], ldd, &w.M[g*ldm], ldm, nb)
				for u := 0; u < T; u++ {
					for i := max(r, r0); i < min(r+8, r1); i++ {
						dst[(t+u)*rows+i] = scratch[u*8+i-r]
					}
				}
			}
		}
	}
	for i := max(r0, gr); i < r1; i++ {
		for t := 0; t < n; t++ {
			dst[t*rows+i] = goDotQ(w, i, x, t)
		}
	}
}

// asmQuantX quantizes the nb full blocks of x into q, d and s with the quantX kernel and
// reports whether it did (false on the pure-Go route).
func asmQuantX(q []int8, d, s, x []float32, nb int) bool {
	if !useAsm || !qAsmAvailable {
		return false
	}
	_ = q[nb*QBlock-1]
	_ = x[nb*QBlock-1]
	_ = d[nb-1]
	_ = s[nb-1]
	quantX(&q[0], &d[0], &s[0], &x[0], nb)
	return true
}

// asmMatVecQRows computes rows [r0, r1) of MatVecQ, four 8-bit rows or 16 4-bit rows per
// call (scratch as for asmQ4Rows). The callers checked
// every length (checkQuant, quantizeX sized x), so the pointers below index inside the slices.
func asmMatVecQRows(dst []float32, w *Quant, x *QX, r0, r1 int, scratch []float32) {
	if !qAsmAvailable {
		goMatVecQRows(dst, w, x, r0, r1)
		return
	}
	nb := w.Blocks()
	if nb == 0 {
		clear(dst[r0:r1])
		return
	}
	_ = x.Q[nb*QBlock-1]
	_ = x.D[nb-1]
	if w.Bits == 8 {
		tbl := &qdot8
		if useVNNI {
			tbl = &qdot8V
		}
		ldw := nb * QBlock
		for r := r0; r < r1; r += 4 {
			R := min(4, r1-r)
			_ = w.Q[(r+R)*ldw-1]
			_ = w.D[(r+R)*nb-1]
			tbl[R-1](&dst[r], &x.Q[0], &x.D[0], &w.Q[r*ldw], ldw, &w.D[r*nb], nb, nb)
		}
		return
	}
	asmQ4Rows(dst, w, x, 1, r0, r1, 1, scratch)
}

// asmDequant widens the n full blocks b0.. of row r into dst with the dequant tiles and
// reports whether it did (false on the pure-Go route).
func asmDequant(dst []float32, w *Quant, r, b0, n int) bool {
	if !useAsm || !qAsmAvailable {
		return false
	}
	i := r*w.Blocks() + b0
	_ = dst[n*QBlock-1]
	_ = w.D[i+n-1]
	if w.Bits == 8 {
		_ = w.Q[(i+n)*QBlock-1]
		dequant8(&dst[0], &w.Q[i*QBlock], &w.D[i], n)
		return true
	}
	panic("kernels: asmDequant: 4-bit rows are widened in Go")
}
