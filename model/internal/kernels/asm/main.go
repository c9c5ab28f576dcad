// Command asm generates the AVX2/FMA assembly kernels of package kernels with avo.
//
// It is its own module so that avo and its dependencies stay out of the library's
// build. Run it through go generate in the kernels directory:
//
//	go generate ./model/internal/kernels
package main

import (
	"fmt"

	. "github.com/mmcloughlin/avo/build"
	. "github.com/mmcloughlin/avo/operand"
	"github.com/mmcloughlin/avo/reg"
)

func main() {
	ConstraintExpr("amd64,!purego")
	for t := 1; t <= 3; t++ {
		for r := 1; r <= 4; r++ {
			tile(t, r, false)
		}
	}
	for r := 1; r <= 4; r++ {
		tile(1, r, true)
	}
	for t := 1; t <= 4; t++ {
		for r := 1; r <= 4; r++ {
			tile512(t, r)
		}
	}
	for r := 1; r <= 4; r++ {
		tileBF16P(r)
	}
	widen()
	Generate()
}

// tile emits tile{F32,BF16}_TxR, which computes for t < T and r < R
//
//	out[t*ldo+r] (+)= Σ_{c<k} x[t*ldx+c] · w[r*ldw+c]
//
// adding to out when acc != 0. k must be a multiple of 8; strides are in elements.
// Each (t, r) pair keeps its own 8-lane accumulator (two when unrolled), so the
// weight tile is loaded once per 8 columns for all T tokens.
func tile(T, R int, bf16 bool) {
	kind, wtype := "F32", "*float32"
	if bf16 {
		kind, wtype = "BF16", "*uint16"
	}
	name := fmt.Sprintf("tile%s_%dx%d", kind, T, R)
	TEXT(name, NOSPLIT, fmt.Sprintf("func(out *float32, ldo int, x *float32, ldx int, w %s, ldw int, k int, acc int)", wtype))
	Doc(fmt.Sprintf("%s computes a %d-token × %d-row tile of dot products (k a multiple of 8).", name, T, R))
	// Unroll twice along k when the 16 vector registers allow it.
	U := 1
	if 2*T*R+T+2 <= 16 {
		U = 2
	}
	tileBody(name, T, R, U, bf16, 8)
}

// tile512 emits tileZ_TxR, the AVX-512 twin of tileF32_TxR (k a multiple of 16).
func tile512(T, R int) {
	name := fmt.Sprintf("tileZ_%dx%d", T, R)
	TEXT(name, NOSPLIT, "func(out *float32, ldo int, x *float32, ldx int, w *float32, ldw int, k int, acc int)")
	Doc(fmt.Sprintf("%s computes a %d-token × %d-row tile of dot products with AVX-512 (k a multiple of 16).", name, T, R))
	U := 1
	if 2*T*R+T+2 <= 32 {
		U = 2
	}
	tileBody(name, T, R, U, false, 16)
}

// tileBody emits the body of a tile kernel with lanes float32 lanes per vector (8: AVX2
// ymm, 16: AVX-512 zmm), U-fold unrolled along k.
func tileBody(name string, T, R, U int, bf16 bool, lanes int) {
	vec := YMM
	if lanes == 16 {
		vec = ZMM
	}
	wsize := 4
	if bf16 {
		wsize = 2
	}

	xs := make([]reg.GPVirtual, T)
	xs[0] = Load(Param("x"), GP64()).(reg.GPVirtual)
	ldx := Load(Param("ldx"), GP64())
	SHLQ(U8(2), ldx)
	for t := 1; t < T; t++ {
		xs[t] = GP64()
		LEAQ(Mem{Base: xs[t-1], Index: ldx, Scale: 1}, xs[t])
	}
	ws := make([]reg.GPVirtual, R)
	ws[0] = Load(Param("w"), GP64()).(reg.GPVirtual)
	ldw := Load(Param("ldw"), GP64())
	if wsize == 4 {
		SHLQ(U8(2), ldw)
	} else {
		SHLQ(U8(1), ldw)
	}
	for r := 1; r < R; r++ {
		ws[r] = GP64()
		LEAQ(Mem{Base: ws[r-1], Index: ldw, Scale: 1}, ws[r])
	}
	k := Load(Param("k"), GP64())
	i := GP64()
	XORQ(i, i)

	accs := make([][][]reg.VecVirtual, U)
	for u := range accs {
		accs[u] = make([][]reg.VecVirtual, T)
		for t := range accs[u] {
			accs[u][t] = make([]reg.VecVirtual, R)
			for r := range accs[u][t] {
				a := vec()
				VXORPS(a, a, a)
				accs[u][t][r] = a
			}
		}
	}

	// step emits the FMAs for 8 columns starting at element index i + 8*u.
	step := func(u int) {
		disp4 := 4 * lanes * u
		xv := make([]reg.VecVirtual, T)
		for t := 0; t < T; t++ {
			xv[t] = vec()
			VMOVUPS(Mem{Base: xs[t], Index: i, Scale: 4, Disp: disp4}, xv[t])
		}
		for r := 0; r < R; r++ {
			wm := Mem{Base: ws[r], Index: i, Scale: uint8(wsize), Disp: wsize * lanes * u}
			if bf16 {
				wv := YMM()
				VPMOVZXWD(wm, wv)
				VPSLLD(U8(16), wv, wv)
				for t := 0; t < T; t++ {
					VFMADD231PS(wv, xv[t], accs[u][t][r])
				}
				continue
			}
			if T == 1 {
				VFMADD231PS(wm, xv[0], accs[u][0][r])
				continue
			}
			wv := vec()
			VMOVUPS(wm, wv)
			for t := 0; t < T; t++ {
				VFMADD231PS(wv, xv[t], accs[u][t][r])
			}
		}
	}

	if U == 2 {
		k2 := GP64()
		MOVQ(k, k2)
		ANDQ(I32(-2*lanes), k2)
		Label(name + "_loop2")
		CMPQ(i, k2)
		JGE(LabelRef(name + "_tail"))
		step(0)
		step(1)
		ADDQ(U8(2*lanes), i)
		JMP(LabelRef(name + "_loop2"))
		Label(name + "_tail")
		CMPQ(i, k)
		JGE(LabelRef(name + "_reduce"))
		step(0)
		Label(name + "_reduce")
		for t := 0; t < T; t++ {
			for r := 0; r < R; r++ {
				VADDPS(accs[1][t][r], accs[0][t][r], accs[0][t][r])
			}
		}
	} else {
		Label(name + "_loop1")
		CMPQ(i, k)
		JGE(LabelRef(name + "_reduce"))
		step(0)
		ADDQ(U8(lanes), i)
		JMP(LabelRef(name + "_loop1"))
		Label(name + "_reduce")
	}
	out := Load(Param("out"), GP64())
	ldo := Load(Param("ldo"), GP64())
	SHLQ(U8(2), ldo)
	accFlag := Load(Param("acc"), GP64())
	a := accs[0]
	for t := 0; t < T; t++ {
		if t > 0 {
			ADDQ(ldo, out)
		}
		if lanes == 16 {
			// EVEX-only reduction: the accumulators may live in Z16-Z31, which
			// VHADDPS and VEXTRACTF128 cannot encode.
			for r := 0; r < R; r++ {
				z := a[t][r]
				y := YMM()
				VEXTRACTF64X4(U8(1), z, y)
				VADDPS(y, z.AsY(), y)
				x := XMM()
				VEXTRACTF32X4(U8(1), y, x)
				VADDPS(x, y.AsX(), x)
				sh := XMM()
				VPERMILPS(U8(0x4e), x, sh)
				VADDPS(sh, x, x)
				VPERMILPS(U8(0xb1), x, sh)
				VADDPS(sh, x, x)
				store := fmt.Sprintf("%s_store%d_%d", name, t, r)
				TESTQ(accFlag, accFlag)
				JZ(LabelRef(store))
				VADDSS(Mem{Base: out, Disp: 4 * r}, x, x)
				Label(store)
				VMOVSS(x, Mem{Base: out, Disp: 4 * r})
			}
			continue
		}
		if R == 4 {
			// Transposing reduction: one vector with the four row sums.
			h01, h23 := YMM(), YMM()
			VHADDPS(a[t][1], a[t][0], h01)
			VHADDPS(a[t][3], a[t][2], h23)
			VHADDPS(h23, h01, h01)
			hi := XMM()
			VEXTRACTF128(U8(1), h01, hi)
			VADDPS(hi, h01.AsX(), hi)
			store := fmt.Sprintf("%s_store%d", name, t)
			TESTQ(accFlag, accFlag)
			JZ(LabelRef(store))
			VADDPS(Mem{Base: out}, hi, hi)
			Label(store)
			VMOVUPS(hi, Mem{Base: out})
			continue
		}
		for r := 0; r < R; r++ {
			hi := XMM()
			VEXTRACTF128(U8(1), a[t][r], hi)
			VADDPS(hi, a[t][r].AsX(), hi)
			VHADDPS(hi, hi, hi)
			VHADDPS(hi, hi, hi)
			store := fmt.Sprintf("%s_store%d_%d", name, t, r)
			TESTQ(accFlag, accFlag)
			JZ(LabelRef(store))
			VADDSS(Mem{Base: out, Disp: 4 * r}, hi, hi)
			Label(store)
			VMOVSS(hi, Mem{Base: out, Disp: 4 * r})
		}
	}
	VZEROUPPER()
	RET()
}

// tileBF16P emits tileBF16P_1xR, the matrix-vector tile for bf16 weights with a
// permuted x: for r < R
//
//	out[r] = Σ_{c<k} xp[c'] · bf16(w[r*ldw+c])
//
// where each block of 16 columns of x is stored as x[0:4], x[8:12], x[4:8], x[12:16]
// (see permuteX). That order is what VPUNPCKLWD/VPUNPCKHWD against zero produce from 16
// bf16 weights, one instruction per 8 widened weights instead of a zero-extending load
// and a shift. k must be a multiple of 16. Two accumulators per row hide FMA latency.
func tileBF16P(R int) {
	name := fmt.Sprintf("tileBF16P_1x%d", R)
	TEXT(name, NOSPLIT, "func(out *float32, xp *float32, w *uint16, ldw int, k int)")
	Doc(fmt.Sprintf("%s computes %d bf16 rows · permuted x (k a multiple of 16; see permuteX).", name, R))
	x := Load(Param("xp"), GP64())
	ws := make([]reg.GPVirtual, R)
	ws[0] = Load(Param("w"), GP64()).(reg.GPVirtual)
	ldw := Load(Param("ldw"), GP64())
	SHLQ(U8(1), ldw)
	for r := 1; r < R; r++ {
		ws[r] = GP64()
		LEAQ(Mem{Base: ws[r-1], Index: ldw, Scale: 1}, ws[r])
	}
	// pf[r] walks row r+R, the same row of the next tile: the rows of a chunk are
	// contiguous, so this prefetches one tile ahead. Each row is a short stream that
	// the hardware prefetcher alone picks up too late.
	pf := make([]reg.GPVirtual, R)
	for r := 0; r < R; r++ {
		pf[r] = GP64()
		if r == 0 {
			LEAQ(Mem{Base: ws[R-1], Index: ldw, Scale: 1}, pf[0])
		} else {
			LEAQ(Mem{Base: pf[r-1], Index: ldw, Scale: 1}, pf[r])
		}
	}
	k := Load(Param("k"), GP64())
	i := GP64()
	XORQ(i, i)
	zero := YMM()
	VPXOR(zero, zero, zero)
	lo, hi := make([]reg.VecVirtual, R), make([]reg.VecVirtual, R)
	for r := 0; r < R; r++ {
		lo[r], hi[r] = YMM(), YMM()
		VXORPS(lo[r], lo[r], lo[r])
		VXORPS(hi[r], hi[r], hi[r])
	}
	Label(name + "_loop")
	CMPQ(i, k)
	JGE(LabelRef(name + "_reduce"))
	xl, xh := YMM(), YMM()
	VMOVUPS(Mem{Base: x, Index: i, Scale: 4}, xl)
	VMOVUPS(Mem{Base: x, Index: i, Scale: 4, Disp: 32}, xh)
	for r := 0; r < R; r++ {
		wv, a, b := YMM(), YMM(), YMM()
		PREFETCHT0(Mem{Base: pf[r], Index: i, Scale: 2})
		VMOVDQU(Mem{Base: ws[r], Index: i, Scale: 2}, wv)
		VPUNPCKLWD(wv, zero, a)
		VPUNPCKHWD(wv, zero, b)
		VFMADD231PS(a, xl, lo[r])
		VFMADD231PS(b, xh, hi[r])
	}
	ADDQ(U8(16), i)
	JMP(LabelRef(name + "_loop"))
	Label(name + "_reduce")
	out := Load(Param("out"), GP64())
	for r := 0; r < R; r++ {
		VADDPS(hi[r], lo[r], lo[r])
		h := XMM()
		VEXTRACTF128(U8(1), lo[r], h)
		VADDPS(h, lo[r].AsX(), h)
		VHADDPS(h, h, h)
		VHADDPS(h, h, h)
		VMOVSS(h, Mem{Base: out, Disp: 4 * r})
	}
	VZEROUPPER()
	RET()
}

// widen emits widenBF16: dst[i] = float32 with bf16 bits src[i] (n a multiple of 8).
func widen() {
	TEXT("widenBF16", NOSPLIT, "func(dst *float32, src *uint16, n int)")
	Doc("widenBF16 widens n bf16 values to float32 (n a multiple of 8).")
	dst := Load(Param("dst"), GP64())
	src := Load(Param("src"), GP64())
	n := Load(Param("n"), GP64())
	i := GP64()
	XORQ(i, i)
	n32 := GP64()
	MOVQ(n, n32)
	ANDQ(I32(-32), n32)
	Label("widen_loop32")
	CMPQ(i, n32)
	JGE(LabelRef("widen_loop8"))
	vs := []reg.VecVirtual{YMM(), YMM(), YMM(), YMM()}
	for u, v := range vs {
		VPMOVZXWD(Mem{Base: src, Index: i, Scale: 2, Disp: 16 * u}, v)
	}
	for u, v := range vs {
		VPSLLD(U8(16), v, v)
		VMOVUPS(v, Mem{Base: dst, Index: i, Scale: 4, Disp: 32 * u})
	}
	ADDQ(U8(32), i)
	JMP(LabelRef("widen_loop32"))
	Label("widen_loop8")
	CMPQ(i, n)
	JGE(LabelRef("widen_done"))
	v := YMM()
	VPMOVZXWD(Mem{Base: src, Index: i, Scale: 2}, v)
	VPSLLD(U8(16), v, v)
	VMOVUPS(v, Mem{Base: dst, Index: i, Scale: 4})
	ADDQ(U8(8), i)
	JMP(LabelRef("widen_loop8"))
	Label("widen_done")
	VZEROUPPER()
	RET()
}
