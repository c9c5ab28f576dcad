package model

import (
	"github.com/lighttransfer/lighttransfer-go/model/internal/kernels"
)

// dense runs the forward pass's matrix products on a kernels.Pool, choosing the
// matrix-vector kernel for single rows (decode) and the blocked matrix-matrix kernel for
// spans (prefill), in the weight's own format.
type dense struct{ p *kernels.Pool }

// matmul sets dst[t*w.rows+r] = Σ_c x[t*w.cols+c]·w[r][c] for t < n.
func (d dense) matmul(dst, x []float32, n int, w *matrix) {
	switch {
	case n == 1 && w.bf16 != nil:
		d.p.MatVecBF16(dst, w.bf16, x, w.rows, w.cols)
	case n == 1:
		d.p.MatVec(dst, w.f32, x, w.rows, w.cols)
	case w.bf16 != nil:
		d.p.MatMulBF16(dst, x, w.bf16, n, w.rows, w.cols)
	default:
		d.p.MatMul(dst, x, w.f32, n, w.rows, w.cols)
	}
}

// matmul3 is matmul of the same x through up to three weights (nil w skips one); a
// single row runs as one pool call so decode waits for the workers once, not thrice.
func (d dense) matmul3(x []float32, n int, dst0 []float32, w0 *matrix, dst1 []float32, w1 *matrix, dst2 []float32, w2 *matrix) {
	if n != 1 {
		for i, w := range [3]*matrix{w0, w1, w2} {
			if w != nil {
				d.matmul([3][]float32{dst0, dst1, dst2}[i], x, n, w)
			}
		}
		return
	}
	var ps [kernels.MaxProducts]kernels.Product
	for i, w := range [3]*matrix{w0, w1, w2} {
		if w == nil {
			continue
		}
		if w.cols != w0.cols {
			panic("model: matmul3: weights of different widths")
		}
		ps[i] = kernels.Product{Dst: [3][]float32{dst0, dst1, dst2}[i], W: w.f32, WB: w.bf16, Rows: w.rows}
	}
	d.p.MatVecs(x, w0.cols, ps)
}

// siluMul sets dst = silu(gate) * up element-wise, split over the pool for long slices
// (prefill).
func (d dense) siluMul(dst, gate, up []float32) { d.p.SiLUMul(dst, gate, up) }

// rmsNorm sets dst = x / sqrt(mean(x²) + eps) * w for one row, as Hugging Face's RMSNorm.
func rmsNorm(dst, x, w []float32, eps float32) { kernels.RMSNorm(dst, x, w, eps) }

// addTo sets dst += x.
func addTo(dst, x []float32) { kernels.Add(dst, x) }
