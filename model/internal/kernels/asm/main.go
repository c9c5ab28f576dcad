// Command asm generates the AVX2/FMA assembly kernels of package kernels with avo.
//
// It is its own module so that avo and its dependencies stay out of the library's
// build. Run it through go generate in the kernels directory:
//
//	go generate ./model/internal/kernels
package main

import (
	"fmt"

	"github.com/mmcloughlin/avo/ir"

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
	dequant(8)
	dequant(4)
	for _, vnni := range []bool{false, true} {
		for _, bits := range []int{8, 4} {
			for r := 1; r <= 4; r++ {
				qdot(bits, r, vnni)
			}
		}
	}
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

// qdot emits qdot{8,4}[V]_1xR, the quantized matrix-vector tile: for r < R
//
//	out[r] = Σ_{b<nb} f16(d[r*ldd+b]) · xd[b] · Σ_{j<32} q(r, b, j) · xq[32b+j]   (+ Σ_b f16(m[r*ldm+b]) · xs[b] for 4 bits)
//
// over int8 activations xq (one float32 scale xd per block of 32, and xs = xd·Σxq per block)
// and the rows' blocks at w (ldw bytes per row): 32 int8 per block for 8 bits; for 4 bits 16
// bytes per block, low nibbles columns 0..15 and high nibbles 16..31, levels 0..15 with
// the float16 offsets m (ldm per row, padded to multiples of 8 blocks, as xs). The AVX2
// route multiplies bytes with VPMADDUBSW (unsigned × signed; 8-bit weights are made
// unsigned by moving their signs onto x with VPSIGNB) and pairs with VPMADDWD; the VNNI
// route (V, AVX-512 VNNI on ymm registers) does both with one VPDPBUSD. Each block's int32
// sums become float32 and are scaled by the two block scales into one accumulator per row,
// while the next tile's rows are prefetched.
func qdot(bits, R int, vnni bool) {
	v := ""
	if vnni {
		v = "V"
	}
	name := fmt.Sprintf("qdot%d%s_1x%d", bits, v, R)
	sig := "func(out *float32, xq *int8, xd *float32, w *byte, ldw int, d *uint16, ldd int, nb int)"
	if bits == 4 {
		sig = "func(out *float32, xq *int8, xd *float32, xs *float32, w *byte, ldw int, d *uint16, ldd int, m *uint16, ldm int, nb int)"
	}
	TEXT(name, NOSPLIT, sig)
	route := "AVX2"
	if vnni {
		route = "AVX-512 VNNI"
	}
	Doc(fmt.Sprintf("%s computes %d rows of %d-bit blocks · int8 x with %s (see qdot in asm/main.go).", name, R, bits, route))

	rows := func(base, ld string) []reg.GPVirtual {
		ps := make([]reg.GPVirtual, R)
		ps[0] = Load(Param(base), GP64()).(reg.GPVirtual)
		if R > 1 {
			l := Load(Param(ld), GP64())
			if base != "w" {
				SHLQ(U8(1), l) // float16 elements
			}
			for r := 1; r < R; r++ {
				ps[r] = GP64()
				LEAQ(Mem{Base: ps[r-1], Index: l, Scale: 1}, ps[r])
			}
		}
		return ps
	}
	xq := Load(Param("xq"), GP64())
	xd := Load(Param("xd"), GP64())
	ws := rows("w", "ldw")
	ds := rows("d", "ldd")
	nb := Load(Param("nb"), GP64())
	// The next tile's R rows follow these R rows contiguously: R·(bytes per block) of them
	// per block, prefetched from pfp (scale R on the row offset i; none for R = 3, which
	// only ends a chunk). The rows are short streams that the hardware prefetcher picks up
	// late: on the Zen 3 machine this doubled the speed of a 75968×896 product (interleaved
	// runs, 1.2–3.6× over 12 pairs, q8 and q4, 1 and 2 threads).
	var pfp reg.GPVirtual
	if R != 3 {
		pfp = GP64()
		l := Load(Param("ldw"), GP64())
		SHLQ(U8(map[int]uint8{1: 0, 2: 1, 4: 2}[R]), l)
		LEAQ(Mem{Base: ws[0], Index: l, Scale: 1}, pfp)
	}

	// Constants: 16-bit ones for VPMADDWD, the low-nibble mask for 4 bits.
	splat := func(v uint32) reg.VecVirtual {
		c, t := YMM(), GP32()
		MOVL(U32(v), t)
		VMOVD(t, c.AsX())
		VPBROADCASTD(c.AsX(), c)
		return c
	}
	var ones, mask reg.VecVirtual
	if !vnni {
		ones = splat(0x00010001)
	}
	if bits == 4 {
		mask = splat(0x0f0f0f0f)
	}

	acc := make([]reg.VecVirtual, R)
	for r := range acc {
		acc[r] = YMM()
		VXORPS(acc[r], acc[r], acc[r])
	}
	b, i := GP64(), GP64() // block index; byte offset of the block in a row (32b or 16b)
	XORQ(b, b)
	XORQ(i, i)
	xScale := uint8(1)
	if bits == 4 {
		xScale = 2 // i counts 16 bytes per block, x has 32
	}
	Label(name + "_loop")
	CMPQ(b, nb)
	JGE(LabelRef(name + "_blocks_done"))
	xv, dx := YMM(), YMM()
	VMOVDQU(Mem{Base: xq, Index: i, Scale: xScale}, xv)
	VBROADCASTSS(Mem{Base: xd, Index: b, Scale: 4}, dx)
	if pfp != nil {
		PREFETCHT0(Mem{Base: pfp, Index: i, Scale: uint8(R)})
		if bits == 8 && R == 4 {
			PREFETCHT0(Mem{Base: pfp, Index: i, Scale: 4, Disp: 64})
		}
	}
	for r := 0; r < R; r++ {
		var u, sgn reg.VecVirtual // unsigned and signed bytes
		if bits == 8 {
			wv, ax, sx := YMM(), YMM(), YMM()
			VMOVDQU(Mem{Base: ws[r], Index: i, Scale: 1}, wv)
			VPSIGNB(wv, wv, ax)
			VPSIGNB(wv, xv, sx)
			u, sgn = ax, sx
		} else {
			raw, hi, y := XMM(), XMM(), YMM()
			VMOVDQU(Mem{Base: ws[r], Index: i, Scale: 1}, raw)
			VPSRLW(U8(4), raw, hi)
			VINSERTI128(U8(1), hi, raw.AsY(), y)
			VPAND(mask, y, y)
			u, sgn = y, xv
		}
		p := YMM()
		if vnni {
			VPXOR(p, p, p)
			Instruction(&ir.Instruction{Opcode: "VPDPBUSD", Operands: []Op{sgn, u, p},
				Inputs: []Op{sgn, u, p}, Outputs: []Op{p}, ISA: []string{"AVX512VL", "AVX512_VNNI"}})
		} else {
			VPMADDUBSW(sgn, u, p)
			VPMADDWD(ones, p, p)
		}
		f, sc := YMM(), YMM()
		VCVTDQ2PS(p, f)
		VPBROADCASTW(Mem{Base: ds[r], Index: b, Scale: 2}, sc.AsX())
		VCVTPH2PS(sc.AsX(), sc)
		VMULPS(dx, sc, sc)
		VFMADD231PS(f, sc, acc[r])
	}
	INCQ(b)
	if bits == 8 {
		ADDQ(U8(32), i)
	} else {
		ADDQ(U8(16), i)
	}
	JMP(LabelRef(name + "_loop"))
	Label(name + "_blocks_done")

	if bits == 4 {
		// Offsets: Σ_b m[b]·xs[b], 8 blocks per step (both padded with zeros), into the same
		// accumulators. The row pointers of w are dead; m's reuse the registers' role.
		ms := rows("m", "ldm")
		xs := Load(Param("xs"), GP64())
		k := GP64()
		XORQ(k, k)
		Label(name + "_mloop")
		CMPQ(k, nb)
		JGE(LabelRef(name + "_reduce"))
		xsv := YMM()
		VMOVUPS(Mem{Base: xs, Index: k, Scale: 4}, xsv)
		for r := 0; r < R; r++ {
			mv := YMM()
			VCVTPH2PS(Mem{Base: ms[r], Index: k, Scale: 2}, mv)
			VFMADD231PS(xsv, mv, acc[r])
		}
		ADDQ(U8(8), k)
		JMP(LabelRef(name + "_mloop"))
		Label(name + "_reduce")
	}
	out := Load(Param("out"), GP64())
	reduceStore(out, acc)
	VZEROUPPER()
	RET()
}

// reduceStore stores the lane sums of the R accumulators a to out[0..R-1].
func reduceStore(out reg.Register, a []reg.VecVirtual) {
	if len(a) == 4 {
		h01, h23 := YMM(), YMM()
		VHADDPS(a[1], a[0], h01)
		VHADDPS(a[3], a[2], h23)
		VHADDPS(h23, h01, h01)
		hi := XMM()
		VEXTRACTF128(U8(1), h01, hi)
		VADDPS(hi, h01.AsX(), hi)
		VMOVUPS(hi, Mem{Base: out})
		return
	}
	for r := range a {
		hi := XMM()
		VEXTRACTF128(U8(1), a[r], hi)
		VADDPS(hi, a[r].AsX(), hi)
		VHADDPS(hi, hi, hi)
		VHADDPS(hi, hi, hi)
		VMOVSS(hi, Mem{Base: out, Disp: 4 * r})
	}
}

// dequant emits dequant{8,4}: dst (nb·32 float32) = the nb quantized blocks at q widened, each
// scaled by its float16 scale d[b] (4 bits: levels 0..15 times d[b] plus the offset m[b]). The
// prefill tiles widen 4 weight rows this way before running them through the float32 tiles.
func dequant(bits int) {
	name := fmt.Sprintf("dequant%d", bits)
	sig := "func(dst *float32, q *byte, d *uint16, nb int)"
	if bits == 4 {
		sig = "func(dst *float32, q *byte, d *uint16, m *uint16, nb int)"
	}
	TEXT(name, NOSPLIT, sig)
	Doc(fmt.Sprintf("%s widens nb blocks of %d-bit weights to float32 (see dequant in asm/main.go).", name, bits))
	dst := Load(Param("dst"), GP64())
	q := Load(Param("q"), GP64())
	d := Load(Param("d"), GP64())
	var m reg.GPVirtual
	if bits == 4 {
		m = Load(Param("m"), GP64()).(reg.GPVirtual)
	}
	nb := Load(Param("nb"), GP64())
	b := GP64()
	XORQ(b, b)
	var mask reg.VecVirtual
	if bits == 4 {
		t := GP32()
		MOVL(U32(15), t)
		mask = YMM()
		VMOVD(t, mask.AsX())
		VPBROADCASTD(mask.AsX(), mask)
	}
	Label(name + "_loop")
	CMPQ(b, nb)
	JGE(LabelRef(name + "_done"))
	sc := YMM()
	VPBROADCASTW(Mem{Base: d, Index: b, Scale: 2}, sc.AsX())
	VCVTPH2PS(sc.AsX(), sc)
	if bits == 8 {
		for g := 0; g < 4; g++ {
			v := YMM()
			VPMOVSXBD(Mem{Base: q, Disp: 8 * g}, v)
			VCVTDQ2PS(v, v)
			VMULPS(sc, v, v)
			VMOVUPS(v, Mem{Base: dst, Disp: 32 * g})
		}
		ADDQ(U8(32), q)
	} else {
		off := YMM()
		VPBROADCASTW(Mem{Base: m, Index: b, Scale: 2}, off.AsX())
		VCVTPH2PS(off.AsX(), off)
		for h := 0; h < 2; h++ { // bytes 8h..8h+7: columns 8h.. (low nibbles), 16+8h.. (high)
			t := YMM()
			VPMOVZXBD(Mem{Base: q, Disp: 8 * h}, t)
			lo, hi := YMM(), YMM()
			VPAND(mask, t, lo)
			VPSRLD(U8(4), t, hi)
			for i, v := range []reg.VecVirtual{lo, hi} {
				VCVTDQ2PS(v, v)
				VFMADD213PS(off, sc, v) // v = v·d + m
				VMOVUPS(v, Mem{Base: dst, Disp: 32*h + 64*i})
			}
		}
		ADDQ(U8(16), q)
	}
	ADDQ(U8(128), dst)
	INCQ(b)
	JMP(LabelRef(name + "_loop"))
	Label(name + "_done")
	VZEROUPPER()
	RET()
}
