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

type qdot4Func func(out *float32, xq *int8, xd *float32, xs *float32, w *byte, ldw int, d *uint16, ldd int, m *uint16, ldm int, nb int)

var (
	qdot8  = [4]qdot8Func{qdot8_1x1, qdot8_1x2, qdot8_1x3, qdot8_1x4}
	qdot8V = [4]qdot8Func{qdot8V_1x1, qdot8V_1x2, qdot8V_1x3, qdot8V_1x4}
	qdot4  = [4]qdot4Func{qdot4_1x1, qdot4_1x2, qdot4_1x3, qdot4_1x4}
	qdot4V = [4]qdot4Func{qdot4V_1x1, qdot4V_1x2, qdot4V_1x3, qdot4V_1x4}
)

// asmMatVecQRows computes rows [r0, r1) of MatVecQ four rows per call. The callers checked
// every length (checkQuant, quantizeX sized x), so the pointers below index inside the slices.
func asmMatVecQRows(dst []float32, w *Quant, x *QX, r0, r1 int) {
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
	tbl := &qdot4
	if useVNNI {
		tbl = &qdot4V
	}
	ldw, ldm := nb*QBlock/2, w.MStride()
	_ = x.S[ldm-1]
	for r := r0; r < r1; r += 4 {
		R := min(4, r1-r)
		_ = w.Q[(r+R)*ldw-1]
		_ = w.D[(r+R)*nb-1]
		_ = w.M[(r+R)*ldm-1]
		tbl[R-1](&dst[r], &x.Q[0], &x.D[0], &x.S[0], &w.Q[r*ldw], ldw, &w.D[r*nb], nb, &w.M[r*ldm], ldm, nb)
	}
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
	mi := r*w.MStride() + b0
	_ = w.Q[(i+n)*QBlock/2-1]
	_ = w.M[mi+n-1]
	dequant4(&dst[0], &w.Q[i*QBlock/2], &w.D[i], &w.M[mi], n)
	return true
}
