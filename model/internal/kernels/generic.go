package kernels

import (
	"fmt"
	"math"
)

// bf16 widens a bf16 bit pattern to float32 (exact).
func bf16(b uint16) float32 { return math.Float32frombits(uint32(b) << 16) }

// The portable products sum each output in one float32 chain, column after column, so an
// output's bits depend on its row and token only: goDot4Acc's four rows and goDotAcc's one
// add in the same order, and a product split into column blocks continues the chain of the
// earlier blocks (goMatMulTile with acc). The asm route's tails use goDotAcc too.

// goDotAcc returns s + Σ x[c]·w[c] over len(x), summed in order.
func goDotAcc(s float32, x, w []float32) float32 {
	w = w[:len(x)]
	for c, xv := range x {
		s += xv * w[c]
	}
	return s
}

// goDot4Acc is goDotAcc of x with four weight rows (sharing the loads of x), continuing
// the sums s0..s3.
func goDot4Acc(s0, s1, s2, s3 float32, x, w0, w1, w2, w3 []float32) (float32, float32, float32, float32) {
	w0, w1, w2, w3 = w0[:len(x)], w1[:len(x)], w2[:len(x)], w3[:len(x)]
	for c, xv := range x {
		s0 += xv * w0[c]
		s1 += xv * w1[c]
		s2 += xv * w2[c]
		s3 += xv * w3[c]
	}
	return s0, s1, s2, s3
}

// goDot4BF16 is goDot4Acc from zero with bf16 weight rows (the bits of goDot4Acc on the
// widened rows: widening is exact).
func goDot4BF16(x []float32, w0, w1, w2, w3 []uint16) (s0, s1, s2, s3 float32) {
	w0, w1, w2, w3 = w0[:len(x)], w1[:len(x)], w2[:len(x)], w3[:len(x)]
	for c, xv := range x {
		s0 += xv * bf16(w0[c])
		s1 += xv * bf16(w1[c])
		s2 += xv * bf16(w2[c])
		s3 += xv * bf16(w3[c])
	}
	return
}

// goDotBF16Acc is goDotAcc with bf16 weights.
func goDotBF16Acc(s float32, x []float32, w []uint16) float32 {
	w = w[:len(x)]
	for c, xv := range x {
		s += xv * bf16(w[c])
	}
	return s
}

func goMatVecRows(dst, w, x []float32, r0, r1, cols int) {
	x = x[:cols]
	r := r0
	for ; r+4 <= r1; r += 4 {
		o := r * cols
		dst[r], dst[r+1], dst[r+2], dst[r+3] = goDot4Acc(0, 0, 0, 0, x, w[o:], w[o+cols:], w[o+2*cols:], w[o+3*cols:])
	}
	for ; r < r1; r++ {
		dst[r] = goDotAcc(0, x, w[r*cols:])
	}
}

func goMatVecBF16Rows(dst []float32, w []uint16, x []float32, r0, r1, cols int) {
	x = x[:cols]
	r := r0
	for ; r+4 <= r1; r += 4 {
		o := r * cols
		dst[r], dst[r+1], dst[r+2], dst[r+3] = goDot4BF16(x, w[o:], w[o+cols:], w[o+2*cols:], w[o+3*cols:])
	}
	for ; r < r1; r++ {
		dst[r] = goDotBF16Acc(0, x, w[r*cols:])
	}
}

// goMatMulTile adds (or, when !acc, stores) the products of tokens [t0, t1) with R
// (1..4) weight rows given as slices of klen values starting at column kb, into
// dst columns r.. r+R-1, continuing each output's chain of sums.
func goMatMulTile(dst, x []float32, wr *[4][]float32, R, t0, t1, rows, cols, r, kb, klen int, acc bool) {
	for t := t0; t < t1; t++ {
		xt := x[t*cols+kb : t*cols+kb+klen]
		o := dst[t*rows+r : t*rows+r+R]
		var s [4]float32
		if acc {
			copy(s[:], o)
		}
		if R == 4 {
			s[0], s[1], s[2], s[3] = goDot4Acc(s[0], s[1], s[2], s[3], xt, wr[0], wr[1], wr[2], wr[3])
		} else {
			for i := 0; i < R; i++ {
				s[i] = goDotAcc(s[i], xt, wr[i])
			}
		}
		copy(o, s[:R])
	}
}

func goMatMulRows(dst, x, w []float32, n, rows, cols, r0, r1 int) {
	if cols == 0 {
		zeroRows(dst, n, rows, r0, r1)
		return
	}
	var wr [4][]float32
	for kb := 0; kb < cols; kb += kc {
		klen := min(kc, cols-kb)
		for t0 := 0; t0 < n; t0 += tb {
			t1 := min(t0+tb, n)
			for r := r0; r < r1; r += 4 {
				R := min(4, r1-r)
				for i := 0; i < R; i++ {
					wr[i] = w[(r+i)*cols+kb : (r+i)*cols+kb+klen]
				}
				goMatMulTile(dst, x, &wr, R, t0, t1, rows, cols, r, kb, klen, kb > 0)
			}
		}
	}
}

func goMatMulBF16Rows(dst, x []float32, w []uint16, n, rows, cols, r0, r1 int, scratch []float32) {
	if cols == 0 {
		zeroRows(dst, n, rows, r0, r1)
		return
	}
	var wr [4][]float32
	for kb := 0; kb < cols; kb += kc {
		klen := min(kc, cols-kb)
		for t0 := 0; t0 < n; t0 += tb {
			t1 := min(t0+tb, n)
			for r := r0; r < r1; r += 4 {
				R := min(4, r1-r)
				for i := 0; i < R; i++ {
					s := scratch[i*kc : i*kc+klen]
					for c, b := range w[(r+i)*cols+kb : (r+i)*cols+kb+klen] {
						s[c] = bf16(b)
					}
					wr[i] = s
				}
				goMatMulTile(dst, x, &wr, R, t0, t1, rows, cols, r, kb, klen, kb > 0)
			}
		}
	}
}

// zeroRows clears dst columns [r0, r1) of all n tokens (the empty sum, cols == 0).
func zeroRows(dst []float32, n, rows, r0, r1 int) {
	for t := 0; t < n; t++ {
		clear(dst[t*rows+r0 : t*rows+r1])
	}
}

// RMSNorm sets dst = x · rsqrt(mean(x²) + eps) · w for one row, with Hugging Face's
// float32 semantics: the mean of squares is accumulated in float64 and rounded to
// float32, then eps is added and 1/sqrt taken in float32, and each element is scaled
// as w[i]·(x[i]·r). dst may alias x. Panics unless len(dst) == len(x) == len(w).
func RMSNorm(dst, x, w []float32, eps float32) {
	if len(w) != len(x) || len(dst) != len(x) {
		panic(fmt.Sprintf("kernels: RMSNorm: len(dst)=%d len(x)=%d len(w)=%d differ", len(dst), len(x), len(w)))
	}
	if len(x) == 0 {
		return
	}
	var s0, s1 float64
	i := 0
	for ; i+2 <= len(x); i += 2 {
		a, b := float64(x[i]), float64(x[i+1])
		s0 += a * a
		s1 += b * b
	}
	if i < len(x) {
		a := float64(x[i])
		s0 += a * a
	}
	v := float32((s0 + s1) / float64(len(x)))
	r := 1 / float32(math.Sqrt(float64(v+eps)))
	w = w[:len(x)]
	dst = dst[:len(x)]
	for i, xv := range x {
		dst[i] = w[i] * (xv * r)
	}
}

// SiLUMul sets dst[i] = silu(gate[i])·up[i], silu(g) = g/(1+exp(-g)), in float32 with
// exp(-g) from a degree-5 polynomial on the argument reduced by ln 2 (relative error about
// 2e-7; see siluMul1). Every route and position gives an element the same bits (the AVX2
// route runs the same float32 operations 8 at a time). dst may alias gate or up. Panics
// unless the three lengths are equal.
func SiLUMul(dst, gate, up []float32) {
	if len(gate) != len(up) || len(dst) != len(up) {
		panic(fmt.Sprintf("kernels: SiLUMul: len(dst)=%d len(gate)=%d len(up)=%d differ", len(dst), len(gate), len(up)))
	}
	up = up[:len(gate)]
	dst = dst[:len(gate)]
	i := asmSiLUMul(dst, gate, up)
	for ; i < len(gate); i++ {
		dst[i] = siluMul1(gate[i], up[i])
	}
}

// The constants of siluMul1 (bits in asm/main.go's siluConsts).
const (
	siluClamp = 88
	siluLog2e = 1.44269504088896341
	siluLn2Hi = 0.693359375
	siluLn2Lo = -2.12194440e-4
	siluP0    = 1.9875691500e-4
	siluP1    = 1.3981999507e-3
	siluP2    = 8.3334519073e-3
	siluP3    = 4.1665795894e-2
	siluP4    = 1.6666665459e-1
	siluP5    = 5.0000001201e-1
)

// siluMul1 is silu(g)·u as the assembly computes it, one rounded float32 operation at a
// time (the explicit conversions keep the compiler from fusing a multiply and an add):
// x = -g clamped to [-88, 88], k = round-to-even(x·log2e), r = (x - k·ln2hi) - k·ln2lo,
// exp(x) = 2^k·(r²·p(r) + r + 1) (2^-127 taken as 0), result g/(1+exp(x))·u.
func siluMul1(g, u float32) float32 {
	x := -g
	if x > siluClamp {
		x = siluClamp
	}
	if x < -siluClamp {
		x = -siluClamp
	}
	k := float32(math.RoundToEven(float64(float32(x * siluLog2e))))
	r := x - float32(k*siluLn2Hi)
	r -= float32(k * siluLn2Lo)
	p := float32(siluP0 * r)
	p = float32(float32(p+siluP1) * r)
	p = float32(float32(p+siluP2) * r)
	p = float32(float32(p+siluP3) * r)
	p = float32(float32(p+siluP4) * r)
	p = float32(float32(float32(p+siluP5)*r) * r)
	p = float32(p+r) + 1
	var scale float32 // 2^k; k = -127 gives 0 as the assembly's exponent field does
	if k > -127 {
		scale = math.Float32frombits(uint32(int32(k)+127) << 23)
	}
	e := float32(p * scale)
	return float32(g/(1+e)) * u
}

// Add sets dst[i] += x[i] (the residual add). Panics unless len(dst) == len(x).
func Add(dst, x []float32) {
	if len(dst) != len(x) {
		panic(fmt.Sprintf("kernels: Add: len(dst)=%d len(x)=%d differ", len(dst), len(x)))
	}
	x = x[:len(dst)]
	for i := range dst {
		dst[i] += x[i]
	}
}
