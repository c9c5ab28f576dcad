package train

import (
	"math"
	"runtime"
	"sync"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// The training kernels: plain float32 loops over row-major slices, destination first. They
// back the fnOps of ops_model.go; naive float64 twins in the tests check them and their
// gradients against finite differences.

// parallel runs f over [0, n) split into contiguous chunks, one per available CPU.
func parallel(n int, f func(lo, hi int)) {
	w := min(runtime.GOMAXPROCS(0), n)
	if w <= 1 {
		f(0, n)
		return
	}
	var wg sync.WaitGroup
	for i := range w {
		lo, hi := i*n/w, (i+1)*n/w
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(lo, hi)
		}()
	}
	wg.Wait()
}

// gemm computes c = alpha·op(a)·op(b) + beta·c for row-major a, b, c with gonum's blas32
// (op = transpose when ta / tb). a is m×k after op, b k×n after op.
func gemm(ta, tb bool, m, n, k int, a, b []float32, beta float32, c []float32) {
	A := blas32.General{Rows: m, Cols: k, Stride: k, Data: a}
	ot := blas.NoTrans
	if ta {
		A = blas32.General{Rows: k, Cols: m, Stride: m, Data: a}
		ot = blas.Trans
	}
	B := blas32.General{Rows: k, Cols: n, Stride: n, Data: b}
	ob := blas.NoTrans
	if tb {
		B = blas32.General{Rows: n, Cols: k, Stride: k, Data: b}
		ob = blas.Trans
	}
	blas32.Gemm(ot, ob, 1, A, B, beta, blas32.General{Rows: m, Cols: n, Stride: n, Data: c})
}

// rmsNormRows writes y[r] = x[r]·w/sqrt(mean(x[r]²)+eps) for every row of width len(w),
// rounding like Hugging Face's float32 LlamaRMSNorm.
func rmsNormRows(y, x, w []float32, eps float32) {
	h := len(w)
	parallel(len(x)/h, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xr, yr := x[r*h:(r+1)*h], y[r*h:(r+1)*h]
			var ss float32
			for _, v := range xr {
				ss += v * v
			}
			inv := float32(1 / math.Sqrt(float64(ss/float32(h)+eps)))
			for i, v := range xr {
				yr[i] = w[i] * (v * inv)
			}
		}
	})
}

// rmsNormBack writes the gradients of rmsNormRows: dx (like x) and dw (len(w), summed over
// rows) given dy.
func rmsNormBack(dx, dw, x, w, dy []float32, eps float32) {
	h := len(w)
	rows := len(x) / h
	for i := range dw {
		dw[i] = 0
	}
	var mu sync.Mutex
	parallel(rows, func(lo, hi int) {
		acc := make([]float32, h)
		for r := lo; r < hi; r++ {
			xr, dyr, dxr := x[r*h:(r+1)*h], dy[r*h:(r+1)*h], dx[r*h:(r+1)*h]
			var ss float32
			for _, v := range xr {
				ss += v * v
			}
			inv := float32(1 / math.Sqrt(float64(ss/float32(h)+eps)))
			var dot float32 // Σ dy·w·x
			for i, v := range xr {
				g := dyr[i] * w[i]
				dot += g * v
				acc[i] += dyr[i] * v * inv
			}
			c := dot * inv * inv * inv / float32(h)
			for i, v := range xr {
				dxr[i] = dyr[i]*w[i]*inv - v*c
			}
		}
		mu.Lock()
		for i := range dw {
			dw[i] += acc[i]
		}
		mu.Unlock()
	})
}

// ropeTable holds cos and sin for positions 0..T-1 and pairs 0..D/2-1, computed like the
// attention package (float32 angle, float64 cos/sin rounded to float32, times the scale).
type ropeTable struct {
	T, half  int
	cos, sin []float32
}

func newRopeTable(inv []float32, scale float32, T int) *ropeTable {
	h := len(inv)
	t := &ropeTable{T: T, half: h, cos: make([]float32, T*h), sin: make([]float32, T*h)}
	for p := range T {
		for i := range h {
			a := float32(p) * inv[i]
			t.cos[p*h+i] = float32(math.Cos(float64(a))) * scale
			t.sin[p*h+i] = float32(math.Sin(float64(a))) * scale
		}
	}
	return t
}

// apply rotates x (rows of heads·2·half, row r at position r mod T) into y; inverse applies
// the transpose (the gradient).
func (t *ropeTable) apply(y, x []float32, heads int, inverse bool) {
	D := 2 * t.half
	w := heads * D
	parallel(len(x)/w, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			p := r % t.T
			c, s := t.cos[p*t.half:(p+1)*t.half], t.sin[p*t.half:(p+1)*t.half]
			for h := range heads {
				o := r*w + h*D
				for i := range t.half {
					a, b := x[o+i], x[o+i+t.half]
					if inverse {
						y[o+i] = a*c[i] + b*s[i]
						y[o+i+t.half] = b*c[i] - a*s[i]
					} else {
						y[o+i] = a*c[i] - b*s[i]
						y[o+i+t.half] = b*c[i] + a*s[i]
					}
				}
			}
		}
	})
}

// attnShape describes a batch of B sequences of T tokens: H query heads, KV key/value heads
// of width D, and the layer's mask (window 0: causal; else sink + window streaming).
type attnShape struct {
	B, T, H, KV, D int
	sink, window   int
	scale          float32
	loops          bool // force the per-key loops even where the dense route applies (tests)
}

// keys returns the visible key range of query i: keys [0, s) and [lo, i].
func (a *attnShape) keys(i int) (s, lo int) {
	if a.window <= 0 {
		return 0, 0
	}
	lo = max(i-a.window+1, 0)
	return min(a.sink, lo), lo
}

// attnForward writes out [B·T][H·D] = softmax(q·kᵀ·scale, masked)·v for q [B·T][H·D] and
// k, v [B·T][KV·D], and the log-sum-exp of each row's scores into lse [B·T][H].
func attnForward(out, lse, q, k, v []float32, a *attnShape) {
	if a.dense() {
		attnForwardDense(out, lse, q, k, v, a)
		return
	}
	attnForwardLoop(out, lse, q, k, v, a)
}

// dense reports whether the layer takes the dense route (causal, T ≥ denseMin).
func (a *attnShape) dense() bool { return a.window <= 0 && a.T >= denseMin && !a.loops }

// attnBackward writes dq, dk, dv given the forward's inputs, its output, the log-sum-exp
// of its scores and dout.
func attnBackward(dq, dk, dv, q, k, v, out, lse, dout []float32, a *attnShape) {
	if a.dense() {
		attnBackwardDense(dq, dk, dv, q, k, v, out, dout, a)
		return
	}
	attnBackwardLoop(dq, dk, dv, q, k, v, out, lse, dout, a)
}

// attnForwardLoop is attnForward with a loop over the visible keys of every query.
func attnForwardLoop(out, lse, q, k, v []float32, a *attnShape) {
	T, H, KV, D := a.T, a.H, a.KV, a.D
	g := H / KV
	parallel(a.B*KV, func(lo, hi int) {
		p := make([]float32, T)
		for task := lo; task < hi; task++ {
			b, kh := task/KV, task%KV
			for h := kh * g; h < (kh+1)*g; h++ {
				for i := range T {
					o := (b*T+i)*H*D + h*D
					qi, oi := q[o:o+D], out[o:o+D]
					lse[(b*T+i)*H+h] = a.probs(p, qi, k, b, kh, i)
					clear(oi)
					s, lo := a.keys(i)
					for _, r := range [2][2]int{{0, s}, {lo, i + 1}} {
						for j := r[0]; j < r[1]; j++ {
							vj := v[(b*T+j)*KV*D+kh*D:][:D]
							pj := p[j]
							for d := range oi {
								oi[d] += pj * vj[d]
							}
						}
					}
				}
			}
		}
	})
}

// probs fills p[j] with the attention probabilities of query qi (sequence b, KV head kh,
// position i) over its visible keys and returns the log-sum-exp of the scores.
func (a *attnShape) probs(p, qi, k []float32, b, kh, i int) float32 {
	T, KV, D := a.T, a.KV, a.D
	mx := float32(math.Inf(-1))
	s, lo := a.keys(i)
	segs := [2][2]int{{0, s}, {lo, i + 1}}
	for _, r := range segs {
		for j := r[0]; j < r[1]; j++ {
			kj := k[(b*T+j)*KV*D+kh*D:][:D]
			var s float32
			for d, x := range qi {
				s += x * kj[d]
			}
			s *= a.scale
			p[j] = s
			mx = max(mx, s)
		}
	}
	var sum float32
	for _, r := range segs {
		for j := r[0]; j < r[1]; j++ {
			e := expf(p[j] - mx)
			p[j] = e
			sum += e
		}
	}
	inv := 1 / sum
	for _, r := range segs {
		for j := r[0]; j < r[1]; j++ {
			p[j] *= inv
		}
	}
	return mx + float32(math.Log(float64(sum)))
}

// attnBackwardLoop is attnBackward looping over the visible keys of every query; each
// probability is recomputed once as exp(score − lse).
func attnBackwardLoop(dq, dk, dv, q, k, v, out, lse, dout []float32, a *attnShape) {
	T, H, KV, D := a.T, a.H, a.KV, a.D
	g := H / KV
	parallel(a.B*KV, func(lo, hi int) {
		for task := lo; task < hi; task++ {
			b, kh := task/KV, task%KV
			for j := range T {
				r := (b*T+j)*KV*D + kh*D
				clear(dk[r : r+D])
				clear(dv[r : r+D])
			}
			for h := kh * g; h < (kh+1)*g; h++ {
				for i := range T {
					o := (b*T+i)*H*D + h*D
					qi, oi, doi, dqi := q[o:o+D], out[o:o+D], dout[o:o+D], dq[o:o+D]
					l := lse[(b*T+i)*H+h]
					var di float32
					for d := range D {
						di += doi[d] * oi[d]
					}
					clear(dqi)
					s, lo := a.keys(i)
					for _, rg := range [2][2]int{{0, s}, {lo, i + 1}} {
						for j := rg[0]; j < rg[1]; j++ {
							r := (b*T+j)*KV*D + kh*D
							kj, vj, dkj, dvj := k[r:r+D], v[r:r+D], dk[r:r+D], dv[r:r+D]
							var sc, dp float32
							for d := range D {
								sc += qi[d] * kj[d]
								dp += doi[d] * vj[d]
							}
							pj := expf(sc*a.scale - l)
							ds := pj * (dp - di) * a.scale
							for d := range D {
								dqi[d] += ds * kj[d]
								dkj[d] += ds * qi[d]
								dvj[d] += pj * doi[d]
							}
						}
					}
				}
			}
		}
	})
}

// expf returns e^x in float32 for x ≤ 88 (about 1 ulp; 0 below −87.3): x = n·ln2 + r with
// |r| ≤ ln2/2, e^r by a degree-6 polynomial, times 2^n through the exponent bits.
func expf(x float32) float32 {
	if x < -87.3 {
		return 0
	}
	const log2e = 1.44269504088896341
	const ln2hi, ln2lo = 0.693359375, -2.12194440e-4
	n := float32(math.Floor(float64(x*log2e + 0.5)))
	r := x - n*ln2hi - n*ln2lo
	e := 1 + r*(1+r*(0.5+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720))))))
	return e * math.Float32frombits(uint32(int32(n)+127)<<23)
}

func sigmoid(x float32) float32 { return float32(1 / (1 + math.Exp(-float64(x)))) }

// swiglu writes y = silu(g)·u elementwise.
func swiglu(y, g, u []float32) {
	parallel(len(y), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			y[i] = g[i] * sigmoid(g[i]) * u[i]
		}
	})
}

// swigluBack writes dg and du given dy.
func swigluBack(dg, du, g, u, dy []float32) {
	parallel(len(dy), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			s := sigmoid(g[i])
			du[i] = dy[i] * g[i] * s
			dg[i] = dy[i] * u[i] * s * (1 + g[i]*(1-s))
		}
	})
}

// lossRows computes the mean over rows r with target[r] ≥ 0 of the cross-entropy of
// softmax(logits[r]) against either the one-hot target (teacher nil) or the teacher's
// distribution teacher[r] (the KL divergence KL(teacher‖student), whose gradient is the same
// as the soft cross-entropy's). When dlogits is non-nil it receives scale·d loss/d logits.
// It returns the loss in float64.
func lossRows(dlogits, logits, target, teacher []float32, V int, scale float32) float64 {
	rows := len(target)
	count := 0
	for _, t := range target {
		if t >= 0 {
			count++
		}
	}
	if count == 0 {
		for i := range dlogits {
			dlogits[i] = 0
		}
		return 0
	}
	part := make([]float64, rows)
	parallel(rows, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			l := logits[r*V : (r+1)*V]
			var dl []float32
			if dlogits != nil {
				dl = dlogits[r*V : (r+1)*V]
			}
			if target[r] < 0 {
				for i := range dl {
					dl[i] = 0
				}
				continue
			}
			lse := logSumExp(l)
			c := float64(scale) / float64(count)
			if teacher == nil {
				t := int(target[r])
				part[r] = lse - float64(l[t])
				if dl != nil {
					for i, x := range l {
						dl[i] = float32(math.Exp(float64(x)-lse) * c)
					}
					dl[t] -= float32(c)
				}
				continue
			}
			pt := teacher[r*V : (r+1)*V]
			var kl float64
			for i, x := range l {
				if p := float64(pt[i]); p > 0 {
					kl += p * (math.Log(p) - (float64(x) - lse))
				}
				if dl != nil {
					dl[i] = float32((math.Exp(float64(x)-lse) - float64(pt[i])) * c)
				}
			}
			part[r] = kl
		}
	})
	var s float64
	for _, v := range part {
		s += v
	}
	return s / float64(count)
}

// The causal layers' attention as dense products per (sequence, head) through gemm, on
// transposed copies so that every product runs over vectors of length T: the full T×T score
// matrix is computed (twice the work of its lower triangle) and masked, which is still
// several times faster than the per-key loops at T ≥ 64. Streaming layers see at most
// sink+window keys and keep the loops.

// denseMin is the sequence length from which causal attention uses the dense route.
const denseMin = 32

// gather copies the [T][D] block of head h of x (rows b·T.., width w) transposed into dst [D][T].
func gather(dst, x []float32, b, T, w, h, D int) {
	for i := range T {
		row := x[(b*T+i)*w+h*D:][:D]
		for d, v := range row {
			dst[d*T+i] = v
		}
	}
}

// scatterAdd adds the transposed block src [D][T] into head h of x.
func scatterAdd(x, src []float32, b, T, w, h, D int, overwrite bool) {
	for i := range T {
		row := x[(b*T+i)*w+h*D:][:D]
		for d := range row {
			if overwrite {
				row[d] = src[d*T+i]
			} else {
				row[d] += src[d*T+i]
			}
		}
	}
}

// denseScratch holds one worker's buffers of the dense route.
type denseScratch struct {
	qt, kt, vt, dot, ot []float32 // [D][T]
	p, ds               []float32 // [T][T]
}

func newDenseScratch(T, D int) *denseScratch {
	return &denseScratch{qt: make([]float32, D*T), kt: make([]float32, D*T), vt: make([]float32, D*T),
		dot: make([]float32, D*T), ot: make([]float32, D*T), p: make([]float32, T*T), ds: make([]float32, T*T)}
}

// causalProbs fills sc.p with the causal softmax of q_h·k_hᵀ·scale (rows i, keys j ≤ i; the
// rest 0) from sc.qt, sc.kt, and writes each row's log-sum-exp to lse (stride H).
func (a *attnShape) causalProbs(sc *denseScratch, lse []float32) {
	T, D := a.T, a.D
	gemm(true, false, T, T, D, sc.qt, sc.kt, 0, sc.p) // p = qtᵀ·kt = q·kᵀ
	for i := range T {
		row := sc.p[i*T : (i+1)*T]
		mx := float32(math.Inf(-1))
		for j := 0; j <= i; j++ {
			row[j] *= a.scale
			mx = max(mx, row[j])
		}
		var sum float32
		for j := 0; j <= i; j++ {
			row[j] = expf(row[j] - mx)
			sum += row[j]
		}
		inv := 1 / sum
		for j := 0; j <= i; j++ {
			row[j] *= inv
		}
		clear(row[i+1:])
		if lse != nil {
			lse[i*a.H] = mx + float32(math.Log(float64(sum)))
		}
	}
}

// attnForwardDense is attnForward for a causal layer (a.window == 0).
func attnForwardDense(out, lse, q, k, v []float32, a *attnShape) {
	T, H, KV, D := a.T, a.H, a.KV, a.D
	parallel(a.B*H, func(lo, hi int) {
		sc := newDenseScratch(T, D)
		for task := lo; task < hi; task++ {
			b, h := task/H, task%H
			kh := h / (H / KV)
			gather(sc.qt, q, b, T, H*D, h, D)
			gather(sc.kt, k, b, T, KV*D, kh, D)
			gather(sc.vt, v, b, T, KV*D, kh, D)
			a.causalProbs(sc, lse[b*T*H+h:])
			gemm(false, true, D, T, T, sc.vt, sc.p, 0, sc.ot) // oᵀ = vᵀ·pᵀ
			scatterAdd(out, sc.ot, b, T, H*D, h, D, true)
		}
	})
}

// attnBackwardDense is attnBackward for a causal layer. Query heads sharing a KV head are
// handled by one task, so dk and dv are written by one goroutine each.
func attnBackwardDense(dq, dk, dv, q, k, v, out, dout []float32, a *attnShape) {
	T, H, KV, D := a.T, a.H, a.KV, a.D
	g := H / KV
	parallel(a.B*KV, func(lo, hi int) {
		sc := newDenseScratch(T, D)
		dkt, dvt := make([]float32, D*T), make([]float32, D*T)
		di := make([]float32, T)
		for task := lo; task < hi; task++ {
			b, kh := task/KV, task%KV
			gather(sc.kt, k, b, T, KV*D, kh, D)
			gather(sc.vt, v, b, T, KV*D, kh, D)
			clear(dkt)
			clear(dvt)
			for h := kh * g; h < (kh+1)*g; h++ {
				gather(sc.qt, q, b, T, H*D, h, D)
				gather(sc.dot, dout, b, T, H*D, h, D)
				gather(sc.ot, out, b, T, H*D, h, D)
				a.causalProbs(sc, nil)
				for i := range T {
					var s float32
					for d := range D {
						s += sc.dot[d*T+i] * sc.ot[d*T+i]
					}
					di[i] = s
				}
				gemm(true, false, T, T, D, sc.dot, sc.vt, 0, sc.ds) // dP = dO·vᵀ
				for i := range T {
					p, ds := sc.p[i*T:(i+1)*T], sc.ds[i*T:(i+1)*T]
					for j := 0; j <= i; j++ {
						ds[j] = p[j] * (ds[j] - di[i]) * a.scale
					}
					clear(ds[i+1:])
				}
				gemm(false, true, D, T, T, sc.kt, sc.ds, 0, sc.ot) // dQᵀ = kᵀ·dSᵀ
				scatterAdd(dq, sc.ot, b, T, H*D, h, D, true)
				gemm(false, false, D, T, T, sc.qt, sc.ds, 1, dkt) // dKᵀ += qᵀ·dS
				gemm(false, false, D, T, T, sc.dot, sc.p, 1, dvt) // dVᵀ += dOᵀ·P
			}
			scatterAdd(dk, dkt, b, T, KV*D, kh, D, true)
			scatterAdd(dv, dvt, b, T, KV*D, kh, D, true)
		}
	})
}

// logSumExp returns log Σ exp(x) of a row, in float64.
func logSumExp(x []float32) float64 {
	mx := math.Inf(-1)
	for _, v := range x {
		mx = math.Max(mx, float64(v))
	}
	var sum float64
	for _, v := range x {
		sum += math.Exp(float64(v) - mx)
	}
	return mx + math.Log(sum)
}
