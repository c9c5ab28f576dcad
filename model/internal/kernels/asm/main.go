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
	tileMV(false)
	tileMV(true)
	for t := 1; t <= 4; t++ {
		for r := 1; r <= 4; r++ {
			tile512(t, r)
		}
	}
	widen()
	siluMul()
	Generate()
}

// tile emits tile{F32,BF16}_TxR, which computes for t < T and r < R
//
//	out[t*ldo+r] (+)= Σ_{c<k} x[t*ldx+c] · w[r*ldw+c]
//
// adding to out when acc != 0. k must be a multiple of 8; strides are in elements.
// Each (t, r) pair keeps one 8-lane accumulator, lane j summing columns j, j+8, j+16, …
// in order, reduced the same way for every tile shape: so out[t*ldo+r] has the same bits
// whatever T, R and the position of (t, r) in the tile (the tileBF16 kernels give the bits
// of tileF32 over the widened weights). That makes a row of a product independent of the
// rows batched with it. The weight tile is loaded once per 8 columns for all T tokens.
func tile(T, R int, bf16 bool) {
	kind, wtype := "F32", "*float32"
	if bf16 {
		kind, wtype = "BF16", "*uint16"
	}
	name := fmt.Sprintf("tile%s_%dx%d", kind, T, R)
	TEXT(name, NOSPLIT, fmt.Sprintf("func(out *float32, ldo int, x *float32, ldx int, w %s, ldw int, k int, acc int)", wtype))
	Doc(fmt.Sprintf("%s computes a %d-token × %d-row tile of dot products (k a multiple of 8).", name, T, R))
	tileBody(name, T, R, 1, bf16, 8)
}

// tile512 emits tileZ_TxR, the AVX-512 twin of tileF32_TxR (k a multiple of 16).
func tile512(T, R int) {
	name := fmt.Sprintf("tileZ_%dx%d", T, R)
	TEXT(name, NOSPLIT, "func(out *float32, ldo int, x *float32, ldx int, w *float32, ldw int, k int, acc int)")
	Doc(fmt.Sprintf("%s computes a %d-token × %d-row tile of dot products with AVX-512 (k a multiple of 16).", name, T, R))
	tileBody(name, T, R, 1, false, 16)
}

// tileBody emits the body of a tile kernel with lanes float32 lanes per vector (8: AVX2
// ymm, 16: AVX-512 zmm), U-fold unrolled along k (U = 2 keeps two accumulators per (t, r),
// which changes the order of the sums; every tile is emitted with U = 1, see tile).
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
		// One reduction for every row and tile shape:
		// ((a0+a4)+(a1+a5)) + ((a2+a6)+(a3+a7)).
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

// mvRows is the row count of the matrix-vector tiles mv{F32,BF16}_1x8.
const mvRows = 8

// tileMV emits mv{F32,BF16}_1x8, the decode (matrix-vector) tile: for r < 8
//
//	out[r] (+)= Σ_{c<k} x[c] · w[r*ldw+c]
//
// with exactly the sums of tile{F32,BF16}_1xR (one 8-lane accumulator per row, lane j
// summing columns j, j+8, … in order, the same reduction), so a row gets the same bits from
// either. Eight rows give eight independent FMA chains, enough to hide the FMA latency that
// four chains expose, and each row prefetches the same columns of the row 8 below (the next
// tile's), the short streams the hardware prefetcher picks up late. k must be a multiple of 8.
func tileMV(bf16 bool) {
	R := mvRows
	kind, wtype, wsize := "F32", "*float32", 4
	if bf16 {
		kind, wtype, wsize = "BF16", "*uint16", 2
	}
	name := fmt.Sprintf("mv%s_1x%d", kind, R)
	TEXT(name, NOSPLIT, fmt.Sprintf("func(out *float32, x *float32, w %s, ldw int, k int, acc int)", wtype))
	Doc(fmt.Sprintf("%s computes 8 rows · x with the sums of tile%s_1xR (k a multiple of 8; see tileMV in asm/main.go).", name, kind))
	x := Load(Param("x"), GP64())
	ldw := Load(Param("ldw"), GP64())
	if wsize == 4 {
		SHLQ(U8(2), ldw)
	} else {
		SHLQ(U8(1), ldw)
	}
	ps := make([]reg.GPVirtual, R)
	ps[0] = Load(Param("w"), GP64()).(reg.GPVirtual)
	for r := 1; r < R; r++ {
		ps[r] = GP64()
		LEAQ(Mem{Base: ps[r-1], Index: ldw, Scale: 1}, ps[r])
	}
	pf := GP64() // bytes from a row to the same column of the row R below
	MOVQ(ldw, pf)
	SHLQ(U8(3), pf)
	k := Load(Param("k"), GP64())
	xend, xend32 := GP64(), GP64()
	LEAQ(Mem{Base: x, Index: k, Scale: 4}, xend)
	ANDQ(I32(-32), k)
	LEAQ(Mem{Base: x, Index: k, Scale: 4}, xend32)
	accs := make([]reg.VecVirtual, R)
	for r := range accs {
		accs[r] = YMM()
		VXORPS(accs[r], accs[r], accs[r])
	}
	// step emits the FMAs of 8 columns at element offset u·8 of the current pointers.
	step := func(u int) {
		xv := YMM()
		VMOVUPS(Mem{Base: x, Disp: 32 * u}, xv)
		for r := 0; r < R; r++ {
			wm := Mem{Base: ps[r], Disp: wsize * 8 * u}
			if bf16 {
				wv := YMM()
				VPMOVZXWD(wm, wv)
				VPSLLD(U8(16), wv, wv)
				VFMADD231PS(wv, xv, accs[r])
			} else {
				VFMADD231PS(wm, xv, accs[r])
			}
		}
	}
	advance := func(cols int) {
		ADDQ(I32(4*cols), x)
		for r := 0; r < R; r++ {
			ADDQ(I32(wsize*cols), ps[r])
		}
	}
	Label(name + "_loop32")
	CMPQ(x, xend32)
	JGE(LabelRef(name + "_loop8"))
	for r := 0; r < R; r++ {
		for off := 0; off < 32*wsize; off += 64 {
			PREFETCHT0(Mem{Base: ps[r], Index: pf, Scale: 1, Disp: off})
		}
	}
	for u := 0; u < 4; u++ {
		step(u)
	}
	advance(32)
	JMP(LabelRef(name + "_loop32"))
	Label(name + "_loop8")
	CMPQ(x, xend)
	JGE(LabelRef(name + "_reduce"))
	step(0)
	advance(8)
	JMP(LabelRef(name + "_loop8"))
	Label(name + "_reduce")
	out := Load(Param("out"), GP64())
	accFlag := Load(Param("acc"), GP64())
	for r := 0; r < R; r++ {
		hi := XMM()
		VEXTRACTF128(U8(1), accs[r], hi)
		VADDPS(hi, accs[r].AsX(), hi)
		VHADDPS(hi, hi, hi)
		VHADDPS(hi, hi, hi)
		store := fmt.Sprintf("%s_store%d", name, r)
		TESTQ(accFlag, accFlag)
		JZ(LabelRef(store))
		VADDSS(Mem{Base: out, Disp: 4 * r}, hi, hi)
		Label(store)
		VMOVSS(hi, Mem{Base: out, Disp: 4 * r})
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

// siluConsts are the float32 constants of siluMul (and of its Go twin siluMul1), in order:
// the clamp of -g, log2(e), ln 2 split in a high part with few bits and the rest, and the
// degree-5 polynomial p of exp(r) ≈ 1 + r + r²·p(r) on |r| ≤ ln2/2 (Cephes expf).
var siluConsts = []struct {
	name string
	bits uint32
}{
	{"clamp", 0x42b00000}, // 88
	{"log2e", 0x3fb8aa3b},
	{"ln2hi", 0x3f318000}, // 0.693359375
	{"ln2lo", 0xb95e8083}, // -2.12194440e-4
	{"p0", 0x39506967},
	{"p1", 0x3ab743ce},
	{"p2", 0x3c088908},
	{"p3", 0x3d2aa9c1},
	{"p4", 0x3e2aaaaa},
	{"p5", 0x3f000000},
	{"one", 0x3f800000},
}

// siluMul emits siluMul: dst[i] = g/(1+e)·up[i] with g = gate[i] and e = exp(-g) computed
// as siluMul1 does, one IEEE float32 operation at a time (no fused multiply-adds, so the Go
// twin gives the same bits): x = -g clamped to [-88, 88] (NaN kept), k = round-to-even(x·log2e),
// r = (x - k·ln2hi) - k·ln2lo, e = (((((p0·r+p1)·r+p2)·r+p3)·r+p4)·r+p5)·r·r + r + 1 scaled by
// 2^k (k = -127 gives 0). n must be a multiple of 8; dst may alias gate or up.
func siluMul() {
	TEXT("siluMul", NOSPLIT, "func(dst *float32, gate *float32, up *float32, n int)")
	Doc("siluMul sets dst[i] = silu(gate[i])·up[i] for n a multiple of 8 (see siluMul in asm/main.go).")
	dst := Load(Param("dst"), GP64())
	gate := Load(Param("gate"), GP64())
	up := Load(Param("up"), GP64())
	n := Load(Param("n"), GP64())
	tab := GLOBL("siluc", RODATA|NOPTR)
	c := map[string]Mem{}
	consts := append(siluConsts, struct {
		name string
		bits uint32
	}{"sign", 0x80000000}, struct {
		name string
		bits uint32
	}{"bias", 127}, struct {
		name string
		bits uint32
	}{"negclamp", 0xc2b00000})
	for j, k := range consts {
		for l := 0; l < 8; l++ {
			DATA(32*j+4*l, U32(k.bits))
		}
		c[k.name] = tab.Offset(32 * j)
	}
	clamp, negClamp := YMM(), YMM()
	VMOVUPS(c["clamp"], clamp)
	VMOVUPS(c["negclamp"], negClamp)
	i := GP64()
	XORQ(i, i)
	Label("silu_loop")
	CMPQ(i, n)
	JGE(LabelRef("silu_done"))
	g, x := YMM(), YMM()
	VMOVUPS(Mem{Base: gate, Index: i, Scale: 4}, g)
	VXORPS(c["sign"], g, x) // x = -g
	VMINPS(x, clamp, x)     // clamp < x ? clamp : x (NaN stays)
	VMAXPS(x, negClamp, x)  // -clamp > x ? -clamp : x
	k, t := YMM(), YMM()
	VMULPS(c["log2e"], x, k)
	VROUNDPS(U8(0), k, k) // to nearest, ties to even
	VMULPS(c["ln2hi"], k, t)
	VSUBPS(t, x, x)
	VMULPS(c["ln2lo"], k, t)
	VSUBPS(t, x, x) // r
	p := YMM()
	VMULPS(c["p0"], x, p)
	for _, name := range []string{"p1", "p2", "p3", "p4"} {
		VADDPS(c[name], p, p)
		VMULPS(x, p, p)
	}
	VADDPS(c["p5"], p, p)
	VMULPS(x, p, p)
	VMULPS(x, p, p) // p·r·r
	VADDPS(x, p, p)
	VADDPS(c["one"], p, p)
	VCVTPS2DQ(k, k) // k is integral: exact
	VPADDD(c["bias"], k, k)
	VPSLLD(U8(23), k, k) // 2^k
	VMULPS(k, p, p)      // e
	VADDPS(c["one"], p, p)
	VDIVPS(p, g, g) // g/(1+e)
	VMULPS(Mem{Base: up, Index: i, Scale: 4}, g, g)
	VMOVUPS(g, Mem{Base: dst, Index: i, Scale: 4})
	ADDQ(U8(8), i)
	JMP(LabelRef("silu_loop"))
	Label("silu_done")
	VZEROUPPER()
	RET()
}
