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

// rmsNorm sets dst = x / sqrt(mean(x²) + eps) * w for one row, as Hugging Face's RMSNorm.
func rmsNorm(dst, x, w []float32, eps float32) { kernels.RMSNorm(dst, x, w, eps) }

// siluMul sets dst = silu(gate) * up element-wise.
func siluMul(dst, gate, up []float32) { kernels.SiLUMul(dst, gate, up) }

// addTo sets dst += x.
func addTo(dst, x []float32) { kernels.Add(dst, x) }
