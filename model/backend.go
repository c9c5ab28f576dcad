package model

import (
	"github.com/lighttransfer/lighttransfer-go/attention"
	"github.com/lighttransfer/lighttransfer-go/kvcache"
	"github.com/lighttransfer/lighttransfer-go/layerselect"
)

// backend is the compute a forward step runs on: the dense products, norms, RoPE, attention,
// the lazy-ratio reduction and the cache factory. The forward (forward.go) is written against
// it and never names a kernel. cpuBackend (backend_cpu.go) is the first implementation; a
// whole-forward GPU backend is one more implementation in a package of its own (the cuda
// package's kernels and device cache already speak kvcache's and attention's types), and the
// interface is exported when that implementation arrives.
//
// Methods take the step's rows as explicit sizes, destination first, and must not allocate in
// steady state (Session.Next allocates nothing). A backend is used by one forward at a time.
type backend interface {
	// matMul sets dst[t][r] = Σ_c x[t][c]·w[r][c] for t < n (x [n][w.cols], dst [n][w.rows]).
	matMul(dst, x []float32, n int, w *matrix)
	// matMul3 is matMul of the same x through up to three weights of equal width (a nil
	// weight is skipped), as one call where that saves a synchronisation (decode).
	matMul3(x []float32, n int, dst0 []float32, w0 *matrix, dst1 []float32, w1 *matrix, dst2 []float32, w2 *matrix)
	// siluMul sets dst = silu(gate)·up element-wise.
	siluMul(dst, gate, up []float32)
	// rmsNorm sets each row of dst (rows of len(w) values) to x's row / sqrt(mean(x²)+eps) · w.
	rmsNorm(dst, x, w []float32, eps float32)
	// add sets dst += x, x repeated over dst when shorter (a bias added to every row).
	add(dst, x []float32)
	// rope rotates the heads of x ([len(pos)][heads·headDim]) to their positions.
	rope(x []float32, pos []int32, heads int)
	// attend is attention of q at positions pos over kv under the layer's policy (its mask);
	// lse, when not nil, receives each (query, head)'s log-sum-exp. See attention.Attend.
	attend(out, q []float32, pos []int32, kv attention.KV, mask kvcache.Policy, lse []float32)
	// lazyRatio is a layer's lazy ratio from its prefill's post-RoPE q, k and the lse attend
	// returned. See layerselect.LazyRatio.
	lazyRatio(q, k, lse []float32, n int, w layerselect.Window) float64
	// lazyRatioOf is lazyRatio over rows held elsewhere (a prefill split over several steps):
	// the same bits for the same rows. See layerselect.LazyRatioOf.
	lazyRatioOf(p layerselect.Prompt, n int, w layerselect.Window) float64
	// newCache returns an empty KV cache with one layer per policy, full layers of element type
	// full and streaming ones of type streaming.
	newCache(policies []kvcache.Policy, full, streaming kvcache.Type) (*kvcache.Cache, error)
	// close releases the backend's workers; later calls panic.
	close()
}
