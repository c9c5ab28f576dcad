package train

import (
	"math"
	"runtime"
	"sync"
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

// rmsNormRows writes y[r] = x[r]·w/sqrt(mean(x[r]²)+eps) for every row of width len(w),
// rounding like Hugging Face's float32 LlamaRMSNorm.
func rmsNormRows(y, x, w []float32, eps float32) {
	h := len(w)
	parallel(len(x)/h, func(lo, hi int) {
		rmsNormSerial(y[lo*h:hi*h], x[lo*h:hi*h], w, eps)
	})
}

// rmsNormSerial is rmsNormRows on the calling goroutine.
func rmsNormSerial(y, x, w []float32, eps float32) {
	h := len(w)
	for r := range len(x) / h {
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
			t.rotate(y[r*w:(r+1)*w], x[r*w:(r+1)*w], r%t.T, inverse)
		}
	})
}

// rotate applies the rotation of position p to one row x of whole heads, into y.
func (t *ropeTable) rotate(y, x []float32, p int, inverse bool) {
	D := 2 * t.half
	c, s := t.cos[p*t.half:(p+1)*t.half], t.sin[p*t.half:(p+1)*t.half]
	for o := 0; o+D <= len(x); o += D {
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
//
// keep, when non-nil ([B·H][T][T]), receives the probabilities of the dense route for
// attnBackward (which then reuses them instead of recomputing them).
func attnForward(out, lse, keep, q, k, v []float32, a *attnShape) {
	if a.dense() {
		attnForwardDense(out, lse, keep, q, k, v, a)
		return
	}
	attnForwardLoop(out, lse, q, k, v, a)
}

// dense reports whether the layer takes the dense route (causal, T ≥ denseMin).
func (a *attnShape) dense() bool { return a.window <= 0 && a.T >= denseMin && !a.loops }

// attnBackward writes dq, dk, dv given the forward's inputs, its output, the log-sum-exp
// of its scores, the probabilities it kept (nil: recompute them) and dout.
func attnBackward(dq, dk, dv, q, k, v, out, lse, keep, dout []float32, a *attnShape) {
	if a.dense() {
		attnBackwardDense(dq, dk, dv, q, k, v, out, keep, dout, a)
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
// n = round(x·log2 e) (|r| ≤ ln2/2), e^r by a degree-6 polynomial, times 2^n through the exponent bits.
func expf(x float32) float32 {
	if x < -87.3 {
		return 0
	}
	const log2e = 1.44269504088896341
	const ln2hi, ln2lo = 0.693359375, -2.12194440e-4
	const round = 12582912 // 1.5·2²³: adding it rounds a float32 of magnitude < 2²² to an integer
	n := (x*log2e + round) - round
	r := x - n*ln2hi - n*ln2lo
	e := 1 + r*(1+r*(0.5+r*(1.0/6+r*(1.0/24+r*(1.0/120+r*(1.0/720))))))
	return e * math.Float32frombits(uint32(int32(n)+127)<<23)
}

// expAffine sets dst[i] = e^t with t = min(a·src[i]+b, 88) (0 where t < −87.3) for i <
// len(src) and returns Σ dst: the AVX2 kernel on multiples of 8 where the CPU has it, expf on
// the rest. dst may be src.
func expAffine(dst, src []float32, a, b float32) float32 {
	n := len(src)
	dst = dst[:n]
	var s float32
	head := 0
	if useAVX2 && n >= 8 {
		head = n &^ 7
		s = expAffineAVX(&dst[0], &src[0], head, a, b)
	}
	for i := head; i < n; i++ {
		e := expf(min(a*src[i]+b, 88))
		dst[i] = e
		s += e
	}
	return s
}

// swigluChunk is the block of elements whose e^−g the SwiGLU kernels compute at once.
const swigluChunk = 256

// negExpChunks calls f(a, b, e) for consecutive blocks [a, b) of g (split across CPUs) with
// e[i−a] = e^−g[i].
func negExpChunks(g []float32, f func(a, b int, e []float32)) {
	parallel((len(g)+swigluChunk-1)/swigluChunk, func(lo, hi int) {
		var e [swigluChunk]float32
		for c := lo; c < hi; c++ {
			a, b := c*swigluChunk, min((c+1)*swigluChunk, len(g))
			expAffine(e[:], g[a:b], -1, 0)
			f(a, b, e[:b-a])
		}
	})
}

// swiglu writes y = silu(g)·u elementwise (silu(g) = g/(1+e^−g)).
func swiglu(y, g, u []float32) {
	negExpChunks(g, func(a, b int, e []float32) {
		swigluWith(y[a:b], g[a:b], u[a:b], e)
	})
}

// swigluWith writes y = g/(1+e)·u elementwise, e = e^−g.
func swigluWith(y, g, u, e []float32) {
	for i := range y {
		y[i] = g[i] / (1 + e[i]) * u[i]
	}
}

// swigluSerial is swiglu on the calling goroutine.
func swigluSerial(y, g, u []float32) {
	var e [swigluChunk]float32
	for a := 0; a < len(g); a += swigluChunk {
		b := min(a+swigluChunk, len(g))
		expAffine(e[:], g[a:b], -1, 0)
		swigluWith(y[a:b], g[a:b], u[a:b], e[:b-a])
	}
}

// swigluBack writes dg and du given dy.
func swigluBack(dg, du, g, u, dy []float32) {
	negExpChunks(g, func(a, b int, e []float32) {
		for i := a; i < b; i++ {
			s := 1 / (1 + e[i-a])
			du[i] = dy[i] * g[i] * s
			dg[i] = dy[i] * u[i] * s * (1 + g[i]*(1-s))
		}
	})
}

// lossRows computes the mean over rows r with target[r] ≥ 0 of the cross-entropy of
// softmax(logits[r]) against either the one-hot target (teacher nil) or the teacher's
// distribution teacher[r] (the KL divergence KL(teacher‖student), whose gradient is the same
// as the soft cross-entropy's). When dlogits is non-nil it receives scale·d loss/d logits.
// It returns the loss in float64 (sums in float64, exponentials by expf).
func lossRows(dlogits, logits, target, teacher []float32, V int, scale float32) float64 {
	rows := len(target)
	count := 0
	for _, t := range target {
		if t >= 0 {
			count++
		}
	}
	if count == 0 {
		clear(dlogits)
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
				clear(dl)
				continue
			}
			var lse float64
			var inv float32 // 1/Σ e^(x−max), with dl holding e^(x−max)
			if dl != nil {
				mx := l[0]
				for _, x := range l {
					mx = max(mx, x)
				}
				sum := expAffine(dl, l, 1, -mx)
				lse, inv = float64(mx)+math.Log(float64(sum)), 1/sum
			} else {
				lse = logSumExp(l)
			}
			c := float32(float64(scale) / float64(count))
			if teacher == nil {
				t := int(target[r])
				part[r] = lse - float64(l[t])
				if dl != nil {
					for i := range dl {
						dl[i] *= inv * c
					}
					dl[t] -= c
				}
				continue
			}
			pt := teacher[r*V : (r+1)*V]
			var kl float64
			for i, x := range l {
				if p := float64(pt[i]); p > 0 {
					kl += p * (math.Log(p) - (float64(x) - lse))
				}
			}
			for i := range dl {
				dl[i] = (dl[i]*inv - pt[i]) * c
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

// The causal layers' attention as dense products per (sequence, head) on the tile kernel of
// gemm.go: scores S = Q·Kᵀ, the softmax P, O = P·V, and in the backward dP = dO·Vᵀ, dS,
// dQ = dS·K, dK = dSᵀ·Q, dV = Pᵀ·dO. Q, dO, dQ, O are read and written in place (row stride
// H·D), P and dS are [T][T] and lower triangular, and each product computes only the tiles and
// the terms the triangle needs (half the work of the full square). Streaming layers see at
// most sink+window keys and keep the per-key loops.

// denseMin is the sequence length from which causal attention uses the dense route.
const denseMin = 32

// headRows copies the [T][D] block of head h of x (rows b·T.., width w) into dst.
func headRows(dst, x []float32, b, T, w, h, D int) {
	for i := range T {
		copy(dst[i*D:(i+1)*D], x[(b*T+i)*w+h*D:][:D])
	}
}

// denseScratch holds one worker's buffers of the dense route.
type denseScratch struct {
	blk         []float32 // [T][D]
	kt, vt      []float32 // Kᵀ, Vᵀ packed (D×T)
	kr, qr, dor []float32 // K, Q, dO packed (T×D)
	p, ds       []float32 // [T][T]
	di          []float32 // [T]
}

func newDenseScratch(T, D int) *denseScratch {
	wide := (T + gemmNR - 1) / gemmNR * gemmNR * D // D×T packed
	tall := (D + gemmNR - 1) / gemmNR * gemmNR * T // T×D packed
	return &denseScratch{blk: make([]float32, T*D), kt: make([]float32, wide), vt: make([]float32, wide),
		kr: make([]float32, tall), qr: make([]float32, tall), dor: make([]float32, tall),
		p: make([]float32, T*T), ds: make([]float32, T*T), di: make([]float32, T)}
}

// lower is the band of a product whose output is lower triangular (columns j ≤ i).
func lowerOut(T, k int) func(i0 int) (int, int, int) {
	return func(i0 int) (int, int, int) { return 0, k, min(T, i0+gemmMR) }
}

// lowerA is the band of a·b for a lower-triangular a (terms q ≤ i), n output columns.
func lowerA(T, n int) func(i0 int) (int, int, int) {
	return func(i0 int) (int, int, int) { return 0, min(T, i0+gemmMR), n }
}

// upperA is the band of aᵀ·b for a lower-triangular a (terms q ≥ i), n output columns.
func upperA(T, n int) func(i0 int) (int, int, int) {
	return func(i0 int) (int, int, int) { return i0, T, n }
}

// scores writes into p (rows i, keys j ≤ i) the causal softmax of q_h·kᵀ·scale, kᵀ packed in
// sc.kt, q_h at qh with row stride w, and each row's log-sum-exp into lse (stride H; nil:
// not kept). Entries j > i are set to 0.
func (a *attnShape) scores(sc *denseScratch, p, qh []float32, w int, lse []float32) {
	T, D := a.T, a.D
	gemmBand(T, T, D, qh, w, 1, sc.kt, p, T, false, lowerOut(T, D))
	for i := range T {
		row := p[i*T : (i+1)*T]
		mx := float32(math.Inf(-1))
		for j := 0; j <= i; j++ {
			mx = max(mx, row[j])
		}
		mx *= a.scale // scale > 0: the largest scaled score
		sum := expAffine(row[:i+1], row[:i+1], a.scale, -mx)
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
func attnForwardDense(out, lse, keep, q, k, v []float32, a *attnShape) {
	T, H, KV, D := a.T, a.H, a.KV, a.D
	parallel(a.B*H, func(lo, hi int) {
		sc := newDenseScratch(T, D)
		for task := lo; task < hi; task++ {
			b, h := task/H, task%H
			kh := h / (H / KV)
			headRows(sc.blk, k, b, T, KV*D, kh, D)
			packB(sc.kt, sc.blk, true, T, D)
			headRows(sc.blk, v, b, T, KV*D, kh, D)
			packB(sc.kr, sc.blk, false, D, T) // V, T×D
			p := sc.p
			if keep != nil {
				p = keep[task*T*T : (task+1)*T*T]
			}
			o := b*T*H*D + h*D
			a.scores(sc, p, q[o:], H*D, lse[b*T*H+h:])
			gemmBand(T, D, T, p, T, 1, sc.kr, out[o:], H*D, false, lowerA(T, D)) // O = P·V
		}
	})
}

// attnBackwardDense is attnBackward for a causal layer. Query heads sharing a KV head are
// handled by one task, so dk and dv are written by one goroutine each.
func attnBackwardDense(dq, dk, dv, q, k, v, out, keep, dout []float32, a *attnShape) {
	T, H, KV, D := a.T, a.H, a.KV, a.D
	g := H / KV
	parallel(a.B*KV, func(lo, hi int) {
		sc := newDenseScratch(T, D)
		for task := lo; task < hi; task++ {
			b, kh := task/KV, task%KV
			headRows(sc.blk, k, b, T, KV*D, kh, D)
			packB(sc.kt, sc.blk, true, T, D)  // Kᵀ
			packB(sc.kr, sc.blk, false, D, T) // K
			headRows(sc.blk, v, b, T, KV*D, kh, D)
			packB(sc.vt, sc.blk, true, T, D) // Vᵀ
			ok := b*T*KV*D + kh*D
			for h := kh * g; h < (kh+1)*g; h++ {
				o := b*T*H*D + h*D
				p := sc.p
				if keep != nil {
					p = keep[(b*H+h)*T*T : (b*H+h+1)*T*T]
				} else {
					a.scores(sc, p, q[o:], H*D, nil)
				}
				for i := range T {
					var s float32
					r := o + i*H*D
					for d := range D {
						s += dout[r+d] * out[r+d]
					}
					sc.di[i] = s
				}
				gemmBand(T, T, D, dout[o:], H*D, 1, sc.vt, sc.ds, T, false, lowerOut(T, D)) // dP = dO·Vᵀ
				for i := range T {
					pi, ds := p[i*T:(i+1)*T], sc.ds[i*T:(i+1)*T]
					for j := 0; j <= i; j++ {
						ds[j] = pi[j] * (ds[j] - sc.di[i]) * a.scale
					}
					clear(ds[i+1:])
				}
				gemmBand(T, D, T, sc.ds, T, 1, sc.kr, dq[o:], H*D, false, lowerA(T, D)) // dQ = dS·K
				add := h > kh*g
				headRows(sc.blk, q, b, T, H*D, h, D)
				packB(sc.qr, sc.blk, false, D, T)
				gemmBand(T, D, T, sc.ds, 1, T, sc.qr, dk[ok:], KV*D, add, upperA(T, D)) // dK += dSᵀ·Q
				headRows(sc.blk, dout, b, T, H*D, h, D)
				packB(sc.dor, sc.blk, false, D, T)
				gemmBand(T, D, T, p, 1, T, sc.dor, dv[ok:], KV*D, add, upperA(T, D)) // dV += Pᵀ·dO
			}
		}
	})
}

// logSumExp returns log Σ exp(x) of a row (the sum in float64 of expf terms).
func logSumExp(x []float32) float64 {
	mx := float32(math.Inf(-1))
	for _, v := range x {
		mx = max(mx, v)
	}
	var sum float64
	for _, v := range x {
		sum += float64(expf(v - mx))
	}
	return float64(mx) + math.Log(sum)
}
