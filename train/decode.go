package train

import (
	"math"
	"math/rand/v2"
	"strconv"

	"github.com/lighttransfer/lighttransfer-go/loader"
)

// The sampler's forward: a group of sequences decoded in lockstep with full attention, one
// position per step. Each step's projections are one product over the group's rows with the
// tile kernel (weights packed once); each sequence keeps its keys in 16-position panels and
// its values in 16-column panels, the layouts the tile kernel reads, so attention scores and
// the probability-weighted values are tile products too.

// decWeights are the checkpoint's tensors prepared for decoding: matrices packed as the
// second operand of x·Wᵀ (read-only, shared by every decoder).
type decWeights struct {
	cfg     loader.Config
	embed   []float32 // [V][h]
	norm    []float32
	head    []float32 // packed, V columns
	layers  []decLayer
	rope    *ropeTable
	scale   float32
	eps     float32
	qd, kvd int
}

type decLayer struct {
	inNorm, postNorm []float32
	q, k, v, o       []float32 // packed
	gate, up, down   []float32 // packed
	qb, kb, vb       []float32 // biases or nil
}

// packT packs Wᵀ for a row-major W of n rows × k columns (x·Wᵀ's second operand).
func packT(w []float32, n, k int) []float32 {
	pk := make([]float32, (n+gemmNR-1)/gemmNR*k*gemmNR)
	packB(pk, w, true, n, k)
	return pk
}

// newDecWeights packs w for decoding up to T positions.
func newDecWeights(w *Weights, T int) *decWeights {
	cfg := w.Config
	h, inter := cfg.HiddenSize, cfg.IntermediateSize
	d := &decWeights{cfg: cfg, qd: cfg.NumHeads * cfg.HeadDim, kvd: cfg.NumKVHeads * cfg.HeadDim,
		eps: float32(cfg.RMSNormEps), scale: float32(1 / math.Sqrt(float64(cfg.HeadDim)))}
	d.embed = w.Param("model.embed_tokens.weight").Data
	d.norm = w.Param("model.norm.weight").Data
	head := w.Param("lm_head.weight")
	if cfg.TieEmbeddings {
		head = w.Param("model.embed_tokens.weight")
	}
	d.head = packT(head.Data, cfg.VocabSize, h)
	inv, ascale := cfg.RopeInvFreq()
	d.rope = newRopeTable(inv, ascale, T)
	for i := range cfg.NumLayers {
		p := "model.layers." + strconv.Itoa(i) + "."
		get := func(n string) []float32 { return w.Param(p + n).Data }
		l := decLayer{inNorm: get("input_layernorm.weight"), postNorm: get("post_attention_layernorm.weight"),
			q: packT(get("self_attn.q_proj.weight"), d.qd, h), k: packT(get("self_attn.k_proj.weight"), d.kvd, h),
			v: packT(get("self_attn.v_proj.weight"), d.kvd, h), o: packT(get("self_attn.o_proj.weight"), h, d.qd),
			gate: packT(get("mlp.gate_proj.weight"), inter, h), up: packT(get("mlp.up_proj.weight"), inter, h),
			down: packT(get("mlp.down_proj.weight"), h, inter)}
		if cfg.AttentionBias {
			l.qb, l.kb, l.vb = get("self_attn.q_proj.bias"), get("self_attn.k_proj.bias"), get("self_attn.v_proj.bias")
		}
		d.layers = append(d.layers, l)
	}
	return d
}

// decoder holds one group's state: G sequences of up to T positions, their key/value caches
// and the step's buffers (sized once).
type decoder struct {
	w    *decWeights
	G, T int // sequences decoded now (at most capG) and positions
	capG int
	// kc[l] holds, per sequence and KV head, keys in panels of 16 positions ([T/16][D][16]);
	// vc[l] values in panels of 16 columns of the head ([ceil(D/16)][T][16]).
	kc, vc                [][]float32
	kStride, vStride      int // floats per (sequence, KV head)
	x, xn, q, k, v, att   []float32
	gate, up, act, logits []float32
	sc, pbuf, tmp         []float32
}

func newDecoder(w *decWeights, G, T int) *decoder {
	cfg := w.cfg
	D := cfg.HeadDim
	tp := (T + gemmNR - 1) / gemmNR
	dp := (D + gemmNR - 1) / gemmNR
	d := &decoder{w: w, G: G, T: T, capG: G, kStride: tp * D * gemmNR, vStride: dp * T * gemmNR}
	for range cfg.NumLayers {
		d.kc = append(d.kc, make([]float32, G*cfg.NumKVHeads*d.kStride))
		d.vc = append(d.vc, make([]float32, G*cfg.NumKVHeads*d.vStride))
	}
	h, inter := cfg.HiddenSize, cfg.IntermediateSize
	d.x, d.xn = make([]float32, G*h), make([]float32, G*h)
	d.q, d.att = make([]float32, G*w.qd+gemmMR*cfg.HeadDim), make([]float32, G*w.qd)
	d.k, d.v = make([]float32, G*w.kvd), make([]float32, G*w.kvd)
	d.gate, d.up, d.act = make([]float32, G*inter), make([]float32, G*inter), make([]float32, G*inter)
	d.logits = make([]float32, G*cfg.VocabSize)
	d.sc = make([]float32, gemmMR*tp*gemmNR)
	d.pbuf = make([]float32, gemmMR*tp*gemmNR)
	d.tmp = make([]float32, gemmMR*gemmNR)
	return d
}

// product sets c = a·Wᵀ (+c when add) for the G rows of a, W packed with n outputs, k inputs.
func (d *decoder) product(c, a, pk []float32, n, k int, add bool) {
	if !add {
		clear(c[:d.G*n])
	}
	gemmPanels(d.G, n, k, a, k, 1, pk, c, false)
}

// step feeds token ids[g] at position t to every sequence g and leaves the next-token
// logits in d.logits ([G][V]).
func (d *decoder) step(ids []int32, t int) {
	w, cfg := d.w, d.w.cfg
	h, inter, V := cfg.HiddenSize, cfg.IntermediateSize, cfg.VocabSize
	for g, id := range ids {
		copy(d.x[g*h:(g+1)*h], w.embed[int(id)*h:(int(id)+1)*h])
	}
	for li := range w.layers {
		l := &w.layers[li]
		rmsNormSerial(d.xn, d.x, l.inNorm, w.eps)
		d.product(d.q, d.xn, l.q, w.qd, h, false)
		d.product(d.k, d.xn, l.k, w.kvd, h, false)
		d.product(d.v, d.xn, l.v, w.kvd, h, false)
		if l.qb != nil {
			addRows(d.q, l.qb)
			addRows(d.k, l.kb)
			addRows(d.v, l.vb)
		}
		for g := range d.G {
			d.w.rope.rotate(d.q[g*w.qd:(g+1)*w.qd], d.q[g*w.qd:(g+1)*w.qd], t, false)
			d.w.rope.rotate(d.k[g*w.kvd:(g+1)*w.kvd], d.k[g*w.kvd:(g+1)*w.kvd], t, false)
		}
		d.attend(li, t)
		d.product(d.x, d.att, l.o, h, w.qd, true)
		rmsNormSerial(d.xn, d.x, l.postNorm, w.eps)
		d.product(d.gate, d.xn, l.gate, inter, h, false)
		d.product(d.up, d.xn, l.up, inter, h, false)
		swigluSerial(d.act, d.gate, d.up)
		d.product(d.x, d.act, l.down, h, inter, true)
	}
	rmsNormSerial(d.xn, d.x, w.norm, w.eps)
	d.product(d.logits, d.xn, w.head, V, h, false)
}

// addRows adds b to every row of x (rows of len(b)).
func addRows(x, b []float32) {
	for o := 0; o < len(x); o += len(b) {
		r := x[o : o+len(b)]
		for i, v := range b {
			r[i] += v
		}
	}
}

// attend stores position t's keys and values of layer li and writes d.att: for every
// sequence and query head, softmax(q·Kᵀ·scale) over positions 0..t times V.
func (d *decoder) attend(li, t int) {
	cfg := d.w.cfg
	D, H, KV := cfg.HeadDim, cfg.NumHeads, cfg.NumKVHeads
	rep := H / KV
	kc, vc := d.kc[li], d.vc[li]
	panels := t/gemmNR + 1 // key panels holding positions 0..t
	n := t + 1
	for g := range d.G {
		for kh := range KV {
			ks := kc[(g*KV+kh)*d.kStride:][:d.kStride]
			vs := vc[(g*KV+kh)*d.vStride:][:d.vStride]
			kr := d.k[g*d.w.kvd+kh*D:][:D]
			vr := d.v[g*d.w.kvd+kh*D:][:D]
			kp := ks[(t/gemmNR)*D*gemmNR:]
			for j, x := range kr {
				kp[j*gemmNR+t%gemmNR] = x
			}
			for j, x := range vr {
				vs[(j/gemmNR)*d.T*gemmNR+t*gemmNR+j%gemmNR] = x
			}
			for h0 := 0; h0 < rep; h0 += gemmMR {
				rows := min(gemmMR, rep-h0)
				qh := d.q[g*d.w.qd+(kh*rep+h0)*D:] // rows beyond rows: other heads or padding
				ld := panels * gemmNR
				for p := range panels {
					tile(D, qh, D, 1, ks[p*D*gemmNR:(p+1)*D*gemmNR], d.sc[p*gemmNR:], ld, false)
				}
				var sums [gemmMR]float32
				for r := range rows {
					s := d.sc[r*ld : r*ld+n]
					mx := s[0]
					for _, x := range s[1:] {
						if x > mx {
							mx = x
						}
					}
					sums[r] = expAffine(d.pbuf[r*ld:r*ld+n], s, d.w.scale, -d.w.scale*mx)
				}
				for p := 0; p*gemmNR < D; p++ {
					tile(n, d.pbuf, ld, 1, vs[p*d.T*gemmNR:], d.tmp, gemmNR, false)
					cols := min(gemmNR, D-p*gemmNR)
					for r := range rows {
						o := d.att[g*d.w.qd+(kh*rep+h0+r)*D+p*gemmNR:][:cols]
						inv := 1 / sums[r]
						for j := range o {
							o[j] = d.tmp[r*gemmNR+j] * inv
						}
					}
				}
			}
		}
	}
}

// drawToken returns a token drawn from softmax(logits/temp) with r (inverse CDF in id
// order); p is scratch of len(logits). temp must be > 0.
func drawToken(r *rand.Rand, logits, p []float32, temp float64) int32 {
	mx := logits[0]
	best := 0
	for i, x := range logits {
		if x > mx {
			mx, best = x, i
		}
	}
	a := 1 / temp
	if a > 1e6 { // colder than float32 logits resolve: the most likely token
		return int32(best)
	}
	expAffine(p, logits, float32(a), float32(-a)*mx)
	var total float64
	for _, x := range p {
		total += float64(x)
	}
	u := r.Float64() * total
	for i, x := range p {
		u -= float64(x)
		if u < 0 {
			return int32(i)
		}
	}
	return int32(best)
}

// softmaxRow writes softmax(x) into dst.
func softmaxRow(dst, x []float32) {
	mx := x[0]
	for _, v := range x[1:] {
		if v > mx {
			mx = v
		}
	}
	inv := 1 / expAffine(dst, x, 1, -mx)
	for i := range dst {
		dst[i] *= inv
	}
}
