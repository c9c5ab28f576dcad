package kernels

import (
	"fmt"
	"math"

	"github.com/lighttransfer/lighttransfer-go/internal/f16"
)

// QBlock is the number of weights along a row that share one scale (and, for 4-bit
// weights, one offset): 32, as in llama.cpp's q8_0 and q4_0.
const QBlock = 32

// Quant is a row-major [Rows][Cols] weight matrix quantized in blocks of QBlock columns.
// Each row has Blocks() blocks; the last one is padded with zero weights when Cols is not a
// multiple of QBlock, so every row starts at a block boundary.
//
// With Bits 8, block b of row r holds 32 int8 values q (as bytes) in Q[(r·Blocks+b)·32:]
// and the weight is D·q, D the float16 scale D[r·Blocks+b].
//
// With Bits 4, each row's block b is 16 bytes whose byte j carries column j in its low
// nibble and column j+16 in its high nibble, q ∈ [0, 15], and the weight is d·q + m with a
// float16 scale d and offset m. The rows are stored in interleaved groups of 8 (rows
// 8g..8g+7, g < Rows/8) so that one 32-byte load feeds 8 rows at once: group g's block b
// is the 128 bytes Q[(g·Blocks+b)·128:], piece k (32 bytes at 32k) holding bytes 4k..4k+3
// of the 8 rows' blocks in row order; their scales are D[(g·Blocks+b)·8:] and offsets
// M[(g·MStride()+b)·8:], 8 each in row order. The last Rows mod 8 rows are stored one by
// one: block b of such a row r at Q[(r·Blocks+b)·16:], scale D[r·Blocks+b], offset
// M[r·MStride()+b]. Either way Q, D and M have Rows·Blocks·16, Rows·Blocks and
// Rows·MStride() elements (the offsets of blocks Blocks.. up to MStride are zero).
type Quant struct {
	Bits       int
	Rows, Cols int
	Q          []byte
	D          []uint16
	M          []uint16
}

// Blocks returns the number of blocks per row, ceil(Cols/QBlock).
func (w *Quant) Blocks() int { return (w.Cols + QBlock - 1) / QBlock }

// MStride returns the number of offsets per row in M (Blocks rounded up to a multiple of 8).
func (w *Quant) MStride() int { return (w.Blocks() + 7) &^ 7 }

// Bytes returns the bytes the matrix occupies (quants, scales and offsets).
func (w *Quant) Bytes() int64 { return int64(len(w.Q) + 2*len(w.D) + 2*len(w.M)) }

// Q4Scheme chooses how QuantizeQ4 picks each block's scale and offset.
type Q4Scheme int

const (
	// Q4Nearest is llama.cpp's q4_0 rule: the scale maps the block's largest-magnitude
	// weight to -8, the offset is -8·scale, and each weight rounds to the nearest level.
	Q4Nearest Q4Scheme = iota
	// Q4MinMSE chooses each block's scale and offset to minimise the squared error of the
	// block's weights (a few rounds of rounding and least-squares refitting from several
	// starting ranges).
	Q4MinMSE
)

// NewQuant returns a zero quantized matrix of the given size and bits (8 or 4).
// Panics on other bits or negative sizes.
func NewQuant(bits, rows, cols int) Quant {
	if (bits != 8 && bits != 4) || rows < 0 || cols < 0 {
		panic(fmt.Sprintf("kernels: NewQuant: bits=%d rows=%d cols=%d", bits, rows, cols))
	}
	w := Quant{Bits: bits, Rows: rows, Cols: cols}
	nb := w.Blocks()
	w.D = make([]uint16, rows*nb)
	if bits == 8 {
		w.Q = make([]byte, rows*nb*QBlock)
	} else {
		w.Q = make([]byte, rows*nb*QBlock/2)
		w.M = make([]uint16, rows*w.MStride())
	}
	return w
}

// QuantizeRow quantizes row r of w from src (Cols values). For 4-bit matrices scheme
// chooses the rule; 8-bit rows use the least-squares scale search of quantBlock8.
func (w *Quant) QuantizeRow(r int, src []float32, scheme Q4Scheme) {
	src = src[:w.Cols]
	nb := w.Blocks()
	var blk [QBlock]float32
	for b := 0; b < nb; b++ {
		blk = [QBlock]float32{}
		copy(blk[:], src[b*QBlock:min((b+1)*QBlock, w.Cols)])
		i := r*nb + b
		if w.Bits == 8 {
			w.D[i] = quantBlock8(w.Q[i*QBlock:(i+1)*QBlock], &blk)
			continue
		}
		var d, m float32
		var q [QBlock]uint8
		if scheme == Q4MinMSE {
			d, m = fitBlock4(&q, &blk)
		} else {
			d, m = nearestBlock4(&q, &blk)
		}
		di, mi := w.dAt(r, b), w.mAt(r, b)
		w.D[di], w.M[mi] = f16.FromFloat32(d), f16.FromFloat32(m)
		d, m = f16.ToFloat32(w.D[di]), f16.ToFloat32(w.M[mi])
		// Requantize against the stored (rounded) scale and offset.
		for j, x := range blk {
			q[j] = level4(x, d, m)
		}
		o, step := w.q4At(r, b)
		for j := 0; j < 16; j++ {
			w.Q[o+j/4*step+j%4] = q[j] | q[j+16]<<4
		}
	}
}

// grouped returns the number of rows of w stored in interleaved groups of 8: Rows rounded
// down to a multiple of 8 for 4 bits, none for 8 bits.
func (w *Quant) grouped() int {
	if w.Bits != 4 {
		return 0
	}
	return w.Rows &^ 7
}

// q4At returns where row r's 16-byte block b starts in Q (4 bits) and the distance between
// its groups of 4 bytes: byte j is Q[o + (j/4)·step + j%4].
func (w *Quant) q4At(r, b int) (o, step int) {
	if r < w.grouped() {
		return ((r/8)*w.Blocks()+b)*128 + r%8*4, 32
	}
	return (r*w.Blocks() + b) * 16, 4
}

// dAt returns the index in D of row r's block b scale.
func (w *Quant) dAt(r, b int) int {
	if r < w.grouped() {
		return ((r/8)*w.Blocks()+b)*8 + r%8
	}
	return r*w.Blocks() + b
}

// mAt returns the index in M of row r's block b offset (4 bits).
func (w *Quant) mAt(r, b int) int {
	if r < w.grouped() {
		return ((r/8)*w.MStride()+b)*8 + r%8
	}
	return r*w.MStride() + b
}

// level returns the 4-bit level of column j (< 32) of row r's block b.
func (w *Quant) level(r, b, j int) uint8 {
	o, step := w.q4At(r, b)
	v := w.Q[o+j%16/4*step+j%4]
	if j >= 16 {
		v >>= 4
	}
	return v & 15
}

// quantBlock8 stores the block's int8 levels in q and returns their scale d (float16 bits).
// Starting from llama.cpp's q8_0 rule (d = max|x|/127, x/d rounded half to even), it tries 11
// more inverse scales (127+k/10)·(1/max|x|), k = -20, -16, ..., 20, rounding x·inv to levels in
// [-127, 127], refits d = Σx·q/Σq² (rounded to float16) and keeps the pair with the least
// squared error Σ(x-d·q)², so it never does worse than q8_0. On stories260K this moved the
// mean NLL change of 24 self-sampled texts (full attention / by ratio) from +0.11% / +0.10% to
// -0.02% / +0.03% (README, "Quantized weights"). The sums come from searchLanes8 (assembly or
// goSearch8, the same bits).
func quantBlock8(q []byte, x *[QBlock]float32) uint16 {
	var amax float32
	for _, v := range x {
		amax = max(amax, math.Float32frombits(math.Float32bits(v)&^(1<<31)))
	}
	if amax == 0 {
		clear(q[:QBlock])
		return 0
	}
	var inv, sc [q8Candidates]float32
	d0 := f16.FromFloat32(amax / 127)
	sc[0] = f16.ToFloat32(d0)
	if sc[0] == 0 {
		clear(q[:QBlock]) // below float16's range: zeros, as q8_0 stores them
		return d0
	}
	inv[0] = 1 / sc[0]
	ia := 1 / amax
	for c := 1; c < q8Candidates; c++ {
		inv[c] = q8Levels[c] * ia
		sc[c] = q8Steps[c] * amax
	}
	if math.IsInf(float64(sc[0]), 0) || math.IsNaN(float64(sc[0])) {
		// A non-finite weight (or one beyond float16's range): q8_0's rule, no search.
		for j, v := range x {
			q[j] = byte(int8(level8(float32(v * inv[0]))))
		}
		return d0
	}
	var lanes [q8Candidates * 24]float32
	searchLanes8(lanes[:], x, inv[:], sc[:])
	best, bdh, binv := math.Inf(1), d0, inv[0]
	for c := 0; c < q8Candidates; c++ {
		l := lanes[24*c : 24*c+24]
		rr, rt, tt := sumLanes(l[0:8]), sumLanes(l[8:16]), sumLanes(l[16:24])
		dh := d0
		if c > 0 {
			if tt == 0 {
				continue
			}
			dh = f16.FromFloat32(float32(float64(sc[c]) + rt/tt))
		}
		// Σ(x - d·t)² with d = s + Δ and x - s·t = r.
		delta := float64(f16.ToFloat32(dh)) - float64(sc[c])
		if e := rr - 2*delta*rt + delta*delta*tt; e < best {
			best, bdh, binv = e, dh, inv[c]
		}
	}
	for j, v := range x {
		q[j] = byte(int8(level8(float32(v * binv))))
	}
	return bdh
}

// q8Candidates is the number of scales quantBlock8 compares: q8_0's and 11 more.
const q8Candidates = 12

// q8Levels[c] is the level candidate c maps the block's largest magnitude to, 127+k/10 for
// k = 4c-24 (entry 0 unused), and q8Steps[c] its reciprocal.
var q8Levels, q8Steps = func() (l, s [q8Candidates]float32) {
	for c := 1; c < q8Candidates; c++ {
		l[c] = 127 + float32(4*c-24)/10
		s[c] = 1 / l[c]
	}
	return l, s
}()

// sumLanes adds 8 float32 lanes in float64.
func sumLanes(l []float32) float64 {
	return ((float64(l[0]) + float64(l[4])) + (float64(l[1]) + float64(l[5]))) +
		((float64(l[2]) + float64(l[6])) + (float64(l[3]) + float64(l[7])))
}

// goSearch8 writes, for each candidate c with inverse scale inv[c] and scale s[c], the lanes
// of Σr², Σr·t and Σt² to out[24c:24c+8], [+8:+16] and [+16:+24], where t = level8(x·inv)
// and r = x - t·s: lane l sums block values l, l+8, l+16, l+24 in that order, every product
// and sum rounded to float32 apart (the assembly kernel's arithmetic). These residual sums
// give the squared error of any scale near s without the cancellation of Σx² - 2d·Σxt + d²·Σt².
func goSearch8(out []float32, x *[QBlock]float32, inv, s []float32) {
	for c := range inv {
		o := out[24*c : 24*c+24]
		for l := 0; l < 8; l++ {
			var rr, rt, tt float32
			for v := 0; v < 4; v++ {
				xv := x[8*v+l]
				t := level8(float32(xv * inv[c]))
				r := xv - float32(t*s[c])
				if v == 0 {
					rr, rt, tt = float32(r*r), float32(r*t), float32(t*t)
					continue
				}
				rr += float32(r * r)
				rt += float32(r * t)
				tt += float32(t * t)
			}
			o[l], o[8+l], o[16+l] = rr, rt, tt
		}
	}
}

// level8 rounds y half to even (keeping the sign of a zero, as VROUNDPS does) and clamps it
// to [-127, 127].
func level8(y float32) float32 {
	return max(-127, min(127, float32(math.RoundToEven(float64(y)))))
}

// level4 returns the 4-bit level nearest to (x-m)/d.
func level4(x, d, m float32) uint8 {
	if d == 0 {
		return 0
	}
	return uint8(max(0, min(15, math.RoundToEven(float64((x-m)/d)))))
}

// nearestBlock4 is q4_0's rule: d = xmax/-8 for the largest-magnitude xmax, m = -8d.
func nearestBlock4(q *[QBlock]uint8, x *[QBlock]float32) (d, m float32) {
	var amax, xmax float32
	for _, v := range x {
		if a := float32(math.Abs(float64(v))); a > amax {
			amax, xmax = a, v
		}
	}
	d = xmax / -8
	m = -8 * d
	for j, v := range x {
		q[j] = level4(v, d, m)
	}
	return d, m
}

// fitBlock4 chooses d and m minimising Σ(x - (d·q+m))² over six starting ranges (the
// block's range shrunk from both ends by 0, 3, … 15%), each refined by alternating rounding
// and the least-squares fit of d and m for fixed levels until the levels stop changing.
func fitBlock4(q *[QBlock]uint8, x *[QBlock]float32) (d, m float32) {
	lo, hi := x[0], x[0]
	var sx float32
	for _, v := range x {
		lo, hi = min(lo, v), max(hi, v)
		sx += v
	}
	if hi == lo {
		*q = [QBlock]uint8{}
		return 0, lo
	}
	best := math.Inf(1)
	var cq, prev [QBlock]uint8
	for s := 0; s < 6; s++ {
		f := 1 - float32(s)*0.03
		mid := (hi + lo) / 2
		cd, cm := (hi-lo)*f/15, mid-(hi-lo)*f/2
		ok := true
		for it := 0; it < 3; it++ {
			levels4(&cq, x, cd, cm)
			if it > 0 && cq == prev {
				break
			}
			prev = cq
			// Least squares of x ≈ cd·q + cm (level sums are exact integers).
			var sq, sqq int32
			var sqx float32
			for j, v := range x {
				qi := int32(cq[j])
				sq += qi
				sqq += qi * qi
				sqx += float32(qi) * v
			}
			det := float32(QBlock*sqq - sq*sq)
			if det == 0 {
				ok = false
				break
			}
			cd = (QBlock*sqx - float32(sq)*sx) / det
			cm = (sx - cd*float32(sq)) / QBlock
			if cd <= 0 {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		levels4(&cq, x, cd, cm)
		var e float32
		for j, v := range x {
			r := v - (cd*float32(cq[j]) + cm)
			e += r * r
		}
		if float64(e) < best {
			best, d, m, *q = float64(e), cd, cm, cq
		}
	}
	if math.IsInf(best, 1) {
		return nearestBlock4(q, x)
	}
	return d, m
}

// levels4 sets q to the 4-bit levels nearest to (x-m)/d (d > 0), rounding halves up.
func levels4(q *[QBlock]uint8, x *[QBlock]float32, d, m float32) {
	inv := 1 / d
	for j, v := range x {
		// Truncating the clamped t+0.5 rounds (Go's float min and max are slower: NaN rules).
		t := (v-m)*inv + 0.5
		if t < 0 {
			t = 0
		}
		if t > 15.5 {
			t = 15.5
		}
		q[j] = uint8(int32(t))
	}
}

// DequantizeRow widens row r of w into dst (Cols values).
func (w *Quant) DequantizeRow(dst []float32, r int) { w.dequant(dst[:w.Cols], r, 0, w.Cols) }

// dequant widens columns [c0, c1) of row r into dst (c0 a multiple of QBlock).
func (w *Quant) dequant(dst []float32, r, c0, c1 int) {
	nb := w.Blocks()
	if full := (c1 - c0) / QBlock; full > 0 && w.Bits == 8 && asmDequant(dst[:full*QBlock], w, r, c0/QBlock, full) {
		c0 += full * QBlock
		dst = dst[full*QBlock:]
	}
	for c := c0; c < c1; c += QBlock {
		b := c / QBlock
		n := min(QBlock, c1-c)
		o := dst[c-c0 : c-c0+n]
		if w.Bits == 8 {
			i := r*nb + b
			d := f16.ToFloat32(w.D[i])
			q := w.Q[i*QBlock : i*QBlock+n]
			for j := range o {
				o[j] = d * float32(int8(q[j]))
			}
			continue
		}
		d, m := f16.ToFloat32(w.D[w.dAt(r, b)]), f16.ToFloat32(w.M[w.mAt(r, b)])
		for j := range o {
			o[j] = d*float32(w.level(r, b, j)) + m
		}
	}
}

// QX holds activation rows quantized to int8 per block of QBlock values, the activation
// side of the quantized products: row t has Q[t·Blocks·32:] (Blocks·32 int8, zero-padded),
// the float32 scale of each block in D[t·MStride:] and each block's D·Σq (for the offsets of
// 4-bit weights) in S[t·MStride:], MStride = Blocks rounded up to a multiple of 8 (zeros).
type QX struct {
	Q       []int8
	D, S    []float32
	N       int // rows
	Blocks  int // blocks per row
	MStride int // scales (and sums) per row
}

// grow sizes q for n rows of cols values, keeping its storage when large enough.
func (q *QX) grow(n, cols int) {
	nb := (cols + QBlock - 1) / QBlock
	nm := (nb + 7) &^ 7
	if cap(q.Q) < n*nb*QBlock {
		q.Q = make([]int8, n*nb*QBlock)
	}
	if cap(q.D) < n*nm {
		q.D = make([]float32, n*nm)
		q.S = make([]float32, n*nm)
	}
	q.Q, q.D, q.S = q.Q[:n*nb*QBlock], q.D[:n*nm], q.S[:n*nm]
	q.N, q.Blocks, q.MStride = n, nb, nm
}

// quantizeX quantizes one row x (cols values) into q (sized for one row).
func quantizeX(q *QX, x []float32, cols int) {
	q.grow(1, cols)
	quantizeXRows(q, x, cols, 0, 1)
}

// quantizeXRows quantizes rows [t0, t1) of x ([q.N][cols]) into q, grown for q.N rows of
// cols. Every row gets the same bits however it is batched: the assembly route's full
// blocks round exactly as the Go code does.
func quantizeXRows(q *QX, x []float32, cols, t0, t1 int) {
	nb, nm := q.Blocks, q.MStride
	for t := t0; t < t1; t++ {
		xr := x[t*cols : (t+1)*cols]
		qs, ds, ss := q.Q[t*nb*QBlock:(t+1)*nb*QBlock], q.D[t*nm:(t+1)*nm], q.S[t*nm:(t+1)*nm]
		b0 := 0
		if full := cols / QBlock; full > 0 && asmQuantX(qs, ds, ss, xr, full) {
			b0 = full
		}
		for b := b0; b < nb; b++ {
			ds[b], ss[b] = quantBlockX(qs[b*QBlock:(b+1)*QBlock], xr[b*QBlock:min((b+1)*QBlock, cols)])
		}
		clear(ds[nb:])
		clear(ss[nb:])
	}
}

// quantBlockX quantizes the block xs (at most QBlock values; the rest of q is zeroed) to q
// and returns its scale d = max|x|/127 and d·Σq: q = round-half-even(x·(127/max|x|)).
func quantBlockX(q []int8, xs []float32) (d, s float32) {
	var amax float32
	for _, v := range xs {
		amax = max(amax, float32(math.Abs(float64(v))))
	}
	if amax == 0 || len(xs) < QBlock {
		clear(q)
	}
	if amax == 0 {
		return 0, 0
	}
	d = amax / 127
	inv := 127 / amax
	sum := int32(0)
	for j, v := range xs {
		t := int8(max(-127, min(127, math.RoundToEven(float64(v*inv)))))
		q[j] = t
		sum += int32(t)
	}
	return d, d * float32(sum)
}

// goDotQ is one output of the pure-Go quantized products: weight row r of w times
// activation row t of x. MatVecQ and MatMulQ both call it, so a row's result has the same
// bits alone or in a batch. It follows the assembly tiles' arithmetic (see asm/quant). 8
// bits: per block, 8 lanes of exact int32 sums of 4 columns each, each added to its lane's
// float32 accumulator by a fused multiply-add with the float32 product of the block scales;
// then the lanes summed as ((l0+l4)+(l1+l5)) + ((l2+l6)+(l3+l7)). 4 bits: per block, the
// exact int32 sum of the block, added by a fused multiply-add with the product of the
// scales, then the offset times the activation block's d·Σq by another. So the routes agree
// bit for bit except where the float64 fused multiply-add, rounded to float32, rounds twice
// differently (rare).
func goDotQ(w *Quant, r int, x *QX, t int) float32 {
	nb := w.Blocks()
	xq := x.Q[t*x.Blocks*QBlock : t*x.Blocks*QBlock+nb*QBlock]
	xd := x.D[t*x.MStride : t*x.MStride+nb]
	if w.Bits == 4 {
		xs := x.S[t*x.MStride : t*x.MStride+nb]
		var acc float32
		for b := 0; b < nb; b++ {
			xb := xq[b*QBlock : (b+1)*QBlock]
			o, step := w.q4At(r, b)
			var s int32
			for k := 0; k < 4; k++ {
				q := w.Q[o+k*step : o+k*step+4]
				for j, v := range q {
					s += int32(v&15)*int32(xb[4*k+j]) + int32(v>>4)*int32(xb[16+4*k+j])
				}
			}
			acc = fma32(float32(s), f16.ToFloat32(w.D[w.dAt(r, b)])*xd[b], acc)
			acc = fma32(f16.ToFloat32(w.M[w.mAt(r, b)]), xs[b], acc)
		}
		return acc
	}
	var acc [8]float32
	var s [8]int32
	for b := 0; b < nb; b++ {
		xb := xq[b*QBlock : (b+1)*QBlock]
		qb := w.Q[(r*nb+b)*QBlock : (r*nb+b+1)*QBlock]
		for j := range s {
			s[j] = int32(int8(qb[4*j]))*int32(xb[4*j]) + int32(int8(qb[4*j+1]))*int32(xb[4*j+1]) +
				int32(int8(qb[4*j+2]))*int32(xb[4*j+2]) + int32(int8(qb[4*j+3]))*int32(xb[4*j+3])
		}
		sc := f16.ToFloat32(w.D[r*nb+b]) * xd[b]
		for j := range acc {
			acc[j] = fma32(float32(s[j]), sc, acc[j])
		}
	}
	return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

// fma32 is a·b+c rounded once to float32 (through float64: a·b is exact there; the sum
// rounds twice, which differs from one rounding only in rare ties).
func fma32(a, b, c float32) float32 {
	return float32(math.FMA(float64(a), float64(b), float64(c)))
}

// goMatVecQRows computes rows [r0, r1) of MatVecQ from the quantized x (row 0).
func goMatVecQRows(dst []float32, w *Quant, x *QX, r0, r1 int) {
	for r := r0; r < r1; r++ {
		dst[r] = goDotQ(w, r, x, 0)
	}
}

// goMatMulQRows computes rows [r0, r1) of MatMulQ for the n quantized rows of x, 4 weight
// rows at a time so they stay in cache while every activation row passes.
func goMatMulQRows(dst []float32, w *Quant, x *QX, n, r0, r1 int) {
	for r := r0; r < r1; r += 4 {
		for t := 0; t < n; t++ {
			for i := r; i < min(r+4, r1); i++ {
				dst[t*w.Rows+i] = goDotQ(w, i, x, t)
			}
		}
	}
}
