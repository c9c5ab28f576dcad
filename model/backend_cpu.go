package model

import (
	"math"

	"github.com/lighttransfer/lighttransfer-go/attention"
	"github.com/lighttransfer/lighttransfer-go/internal/cpu"
	"github.com/lighttransfer/lighttransfer-go/kvcache"
	"github.com/lighttransfer/lighttransfer-go/layerselect"
	"github.com/lighttransfer/lighttransfer-go/loader"
	"github.com/lighttransfer/lighttransfer-go/model/internal/kernels"
)

// cpuBackend runs the forward on the CPU: the dense kernels of model/internal/kernels and the
// attention package, both on one internal/cpu worker pool.
type cpuBackend struct {
	cp    *cpu.Pool
	pool  *kernels.Pool
	rp    *attention.Rope
	attn  attention.Params
	heads layerselect.Heads
	shape kvcache.Shape
}

var _ backend = (*cpuBackend)(nil)

func newCPUBackend(cfg *loader.Config, threads int) *cpuBackend {
	cp := cpu.NewPool(threads)
	b := &cpuBackend{cp: cp, pool: kernels.On(cp)}
	b.attn = attention.Params{
		Heads:   cfg.NumHeads,
		KVHeads: cfg.NumKVHeads,
		HeadDim: cfg.HeadDim,
		Scale:   float32(1 / math.Sqrt(float64(cfg.HeadDim))),
		Threads: cp.Threads(),
		Pool:    cp,
	}
	b.heads = layerselect.Heads{Heads: cfg.NumHeads, KVHeads: cfg.NumKVHeads, HeadDim: cfg.HeadDim, Scale: b.attn.Scale}
	b.shape = kvcache.Shape{KVHeads: cfg.NumKVHeads, HeadDim: cfg.HeadDim}
	inv, scale := cfg.RopeInvFreq()
	b.rp = attention.NewRope(inv, scale, cfg.MaxPositions)
	return b
}

// matMul chooses the matrix-vector kernel for single rows (decode) and the blocked
// matrix-matrix kernel for spans (prefill), in the weight's own format. Quantized weights
// multiply int8 activations in both (kernels.MatVecQ, kernels.MatMulQ), so a row gets the
// same bits in a prefill span, a batched decode step or alone.
func (b *cpuBackend) matMul(dst, x []float32, n int, w *matrix) {
	switch {
	case n == 1 && w.q != nil:
		b.pool.MatVecQ(dst, w.q, x)
	case w.q != nil:
		b.pool.MatMulQ(dst, x, w.q, n)
	case n == 1 && w.bf16 != nil:
		b.pool.MatVecBF16(dst, w.bf16, x, w.rows, w.cols)
	case n == 1:
		b.pool.MatVec(dst, w.f32, x, w.rows, w.cols)
	case w.bf16 != nil:
		b.pool.MatMulBF16(dst, x, w.bf16, n, w.rows, w.cols)
	default:
		b.pool.MatMul(dst, x, w.f32, n, w.rows, w.cols)
	}
}

// allQuantized reports whether every non-nil weight of ws is quantized.
func allQuantized(ws ...*matrix) bool {
	for _, w := range ws {
		if w != nil && w.q == nil {
			return false
		}
	}
	return true
}

// matMul3 runs a single row as one pool call, so decode waits for the workers once, not thrice.
func (b *cpuBackend) matMul3(x []float32, n int, dst0 []float32, w0 *matrix, dst1 []float32, w1 *matrix, dst2 []float32, w2 *matrix) {
	if n != 1 && allQuantized(w0, w1, w2) {
		// One quantization of x for all the products (see kernels.MatMulsQ).
		var ps [kernels.MaxProducts]kernels.Product
		for i, w := range [3]*matrix{w0, w1, w2} {
			if w != nil {
				ps[i] = kernels.Product{Dst: [3][]float32{dst0, dst1, dst2}[i], WQ: w.q, Rows: w.rows}
			}
		}
		b.pool.MatMulsQ(x, n, w0.cols, ps)
		return
	}
	if n != 1 {
		for i, w := range [3]*matrix{w0, w1, w2} {
			if w != nil {
				b.matMul([3][]float32{dst0, dst1, dst2}[i], x, n, w)
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
			panic("model: matMul3: weights of different widths")
		}
		ps[i] = kernels.Product{Dst: [3][]float32{dst0, dst1, dst2}[i], W: w.f32, WB: w.bf16, WQ: w.q, Rows: w.rows}
	}
	b.pool.MatVecs(x, w0.cols, ps)
}

func (b *cpuBackend) siluMul(dst, gate, up []float32) { b.pool.SiLUMul(dst, gate, up) }

func (b *cpuBackend) rmsNorm(dst, x, w []float32, eps float32) {
	d := len(w)
	for i := 0; i+d <= len(x); i += d {
		kernels.RMSNorm(dst[i:i+d], x[i:i+d], w, eps)
	}
}

func (b *cpuBackend) add(dst, x []float32) {
	w := len(x)
	for i := 0; i+w <= len(dst); i += w {
		kernels.Add(dst[i:i+w], x)
	}
}

func (b *cpuBackend) rope(x []float32, pos []int32, heads int) {
	b.rp.Apply(x, pos, heads, b.attn.HeadDim)
}

func (b *cpuBackend) attend(out, q []float32, pos []int32, kv attention.KV, mask kvcache.Policy, lse []float32) {
	attention.Attend(out, q, pos, kv, mask.Sink, mask.Window, b.attn, lse)
}

func (b *cpuBackend) lazyRatio(q, k, lse []float32, n int, w layerselect.Window) float64 {
	return layerselect.LazyRatio(q, k, lse, n, w, b.heads)
}

func (b *cpuBackend) lazyRatioOf(p layerselect.Prompt, n int, w layerselect.Window) float64 {
	return layerselect.LazyRatioOf(p, n, w, b.heads)
}

func (b *cpuBackend) newCache(policies []kvcache.Policy, full, streaming kvcache.Type) (*kvcache.Cache, error) {
	return kvcache.New(b.shape, policies, kvcache.WithType(full, streaming))
}

func (b *cpuBackend) close() {
	b.pool.Close()
	b.cp.Close()
}
