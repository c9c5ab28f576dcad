//go:build !amd64 || purego

package kernels

func asmMatMulQRows(dst []float32, w *Quant, x *QX, n, r0, r1 int, scratch []float32) {
	panic("kernels: no asm route")
}

func asmQuantX(q []int8, d, s, x []float32, nb int) bool { return false }
