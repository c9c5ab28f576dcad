//go:build !amd64 || purego

package kernels

// asmAvailable is false: this build has no assembly kernels.
var asmAvailable = false

// avx512Available is false: this build has no assembly kernels.
var avx512Available = false

// useAsm and useAVX512 are never true in this build; they exist so that tests
// compile everywhere.
var (
	useAsm    = false
	useAVX512 = false
	useVNNI   = false
)

// vnniAvailable is false: this build has no assembly kernels.
var vnniAvailable = false

func asmMatVecRows(dst, w, x []float32, r0, r1, cols int) { panic("kernels: no asm route") }

func asmMatVecBF16Rows(dst []float32, w []uint16, x []float32, r0, r1, cols int, scratch []float32) {
	panic("kernels: no asm route")
}

func asmMatMulRows(dst, x, w []float32, n, rows, cols, r0, r1 int) { panic("kernels: no asm route") }

func asmMatMulBF16Rows(dst, x []float32, w []uint16, n, rows, cols, r0, r1 int, scratch []float32) {
	panic("kernels: no asm route")
}

func asmMatVecQRows(dst []float32, w *Quant, x *QX, r0, r1 int, scratch []float32) {
	panic("kernels: no asm route")
}

func asmTile(dst, x []float32, wr []float32, ldw, T, R, t, rows, cols, r, kb, klen int, acc bool) {
	panic("kernels: no asm route")
}

func tileHeight() int { return 3 }

func asmDequant(dst []float32, w *Quant, r, b0, n int) bool { return false }

func asmSiLUMul(dst, gate, up []float32) int { return 0 }
