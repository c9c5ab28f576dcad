//go:build amd64 && !purego

package kernels

func asmMatVecQRows(dst []float32, w *Quant, x *QX, r0, r1 int) {
	goMatVecQRows(dst, w, x, r0, r1)
}
