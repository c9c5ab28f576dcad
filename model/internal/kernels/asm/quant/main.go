// Command quant generates the AVX2 (and AVX-512 VNNI) assembly kernels of package kernels
// for quantized weights with avo: the activation quantizer, the decode matrix-vector tiles,
// the prefill matrix-matrix tiles and the dequantizer. Run it through go generate in the
// kernels directory:
//
//	go generate ./model/internal/kernels
//
// Batch invariance. Every output of the matrix-vector tiles (qdot, qg4) and of the
// matrix-matrix tiles (qmm, qg4) is computed by the same operations in the same order
// whatever the tile: for 8-bit weights, per block of 32 an exact int32 sum in each of 8
// lanes (lane j holds columns 4j..4j+3), converted to float32 and added to the lane's
// accumulator by one fused multiply-add with the float32 product of the two block scales,
// the lanes finally summed as ((l0+l4)+(l1+l5)) + ((l2+l6)+(l3+l7)); for 4-bit weights
// (interleaved groups of 8 rows, one output per lane) per block the exact int32 sum of the
// block, added by one fused multiply-add with the product of the scales, then the block's
// offset times the activation block's d·Σq by another. So a row's result has the same bits
// whichever tile shape, tile position or batch computes it.
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
	quantX()
	dequant()
	for _, vnni := range []bool{false, true} {
		for r := 1; r <= 4; r++ {
			qdot(r, vnni)
		}
		for r := 1; r <= 4; r++ {
			for t := 1; t <= 2; t++ {
				qmm(r, t, vnni)
			}
		}
		for _, gt := range q4Tiles {
			qg4(gt[0], gt[1], 0, vnni)
		}
		// Decode: one or two groups, prefetching 2 KiB ahead on each group's stream.
		qg4(1, 1, 2048, vnni)
		qg4(2, 1, 2048, vnni)
	}
	Generate()
}

// splat returns a ymm register holding v in every 32-bit lane.
func splat(v uint32) reg.VecVirtual {
	c, t := YMM(), GP32()
	MOVL(U32(v), t)
	VMOVD(t, c.AsX())
	VPBROADCASTD(c.AsX(), c)
	return c
}

// dot8 leaves in p the 8 int32 lane sums of u·s (u unsigned bytes, s signed bytes, both
// exact: |u|,|s| ≤ 127), with VPMADDUBSW+VPMADDWD or one VPDPBUSD.
func dot8(p reg.VecVirtual, u reg.VecVirtual, s Op, ones reg.VecVirtual, vnni bool) {
	if vnni {
		VPXOR(p, p, p)
		Instruction(&ir.Instruction{Opcode: "VPDPBUSD", Operands: []Op{s, u, p},
			Inputs: []Op{s, u, p}, Outputs: []Op{p}, ISA: []string{"AVX512VL", "AVX512_VNNI"}})
		return
	}
	VPMADDUBSW(s, u, p)
	VPMADDWD(ones, p, p)
}

// reduce1 stores the canonical lane sum ((l0+l4)+(l1+l5)) + ((l2+l6)+(l3+l7)) of a to dst.
func reduce1(a reg.VecVirtual, dst Mem) {
	h := XMM()
	VEXTRACTF128(U8(1), a, h)
	VADDPS(h, a.AsX(), h)
	VHADDPS(h, h, h)
	VHADDPS(h, h, h)
	VMOVSS(h, dst)
}

// quantX emits quantX: the nb full blocks of 32 float32 at x quantized to int8 as the Go
// quantizeX does (d = max|x|/127, q = round-half-even(x·(127/max|x|)), s = d·Σq; an all-zero
// block gets q = 0, d = s = 0), q into q (32 per block), d and s one float32 per block.
func quantX() {
	TEXT("quantX", NOSPLIT, "func(q *int8, d *float32, s *float32, x *float32, nb int)")
	Doc("quantX quantizes nb blocks of 32 float32 to int8 per block (see quantX in asm/quant/main.go).")
	q := Load(Param("q"), GP64())
	d := Load(Param("d"), GP64())
	s := Load(Param("s"), GP64())
	x := Load(Param("x"), GP64())
	nb := Load(Param("nb"), GP64())
	absMask := splat(0x7fffffff)
	c127 := XMM()
	{
		t := GP32()
		MOVL(U32(0x42fe0000), t) // 127.0
		VMOVD(t, c127)
	}
	perm := YMM() // dword order 0,4,1,5,2,6,3,7 undoes the lane interleaving of the packs
	{
		t := GP64()
		tx := XMM()
		MOVQ(U64(0x0000000400000000), t)
		VMOVQ(t, perm.AsX())
		MOVQ(U64(0x0000000500000001), t)
		VPINSRQ(U8(1), t, perm.AsX(), perm.AsX())
		MOVQ(U64(0x0000000600000002), t)
		VMOVQ(t, tx)
		MOVQ(U64(0x0000000700000003), t)
		VPINSRQ(U8(1), t, tx, tx)
		VINSERTI128(U8(1), tx, perm, perm)
	}
	Label("quantX_loop")
	TESTQ(nb, nb)
	JZ(LabelRef("quantX_done"))
	v := []reg.VecVirtual{YMM(), YMM(), YMM(), YMM()}
	for i := range v {
		VMOVUPS(Mem{Base: x, Disp: 32 * i}, v[i])
	}
	m0, m1 := YMM(), YMM()
	VANDPS(absMask, v[0], m0)
	VANDPS(absMask, v[1], m1)
	VMAXPS(m1, m0, m0)
	VANDPS(absMask, v[2], m1)
	VMAXPS(m1, m0, m0)
	VANDPS(absMask, v[3], m1)
	VMAXPS(m1, m0, m0)
	amax, t1 := XMM(), XMM()
	VEXTRACTF128(U8(1), m0, t1)
	VMAXPS(t1, m0.AsX(), amax)
	VPERMILPS(U8(0x4e), amax, t1)
	VMAXPS(t1, amax, amax)
	VPERMILPS(U8(0xb1), amax, t1)
	VMAXPS(t1, amax, amax)
	zero := XMM()
	VXORPS(zero, zero, zero)
	VUCOMISS(zero, amax)
	JNE(LabelRef("quantX_nonzero"))
	VXORPS(m0, m0, m0)
	VMOVDQU(m0, Mem{Base: q})
	VMOVSS(zero, Mem{Base: d})
	VMOVSS(zero, Mem{Base: s})
	JMP(LabelRef("quantX_next"))
	Label("quantX_nonzero")
	dd, inv := XMM(), XMM()
	VDIVSS(c127, amax, dd)  // d = amax/127
	VDIVSS(amax, c127, inv) // inv = 127/amax
	VMOVSS(dd, Mem{Base: d})
	iv := YMM()
	VBROADCASTSS(inv, iv)
	sum := YMM()
	for i := range v {
		VMULPS(iv, v[i], v[i])
		VROUNDPS(U8(0), v[i], v[i]) // to nearest, ties to even
		if i == 0 {
			VMOVAPS(v[0], sum)
		} else {
			VADDPS(v[i], sum, sum) // integers below 2^24: exact in any order
		}
		VCVTPS2DQ(v[i], v[i])
	}
	VPACKSSDW(v[1], v[0], v[0])
	VPACKSSDW(v[3], v[2], v[2])
	VPACKSSWB(v[2], v[0], v[0])
	VPERMD(v[0], perm, v[0])
	VMOVDQU(v[0], Mem{Base: q})
	sx := XMM()
	VEXTRACTF128(U8(1), sum, sx)
	VADDPS(sx, sum.AsX(), sx)
	VHADDPS(sx, sx, sx)
	VHADDPS(sx, sx, sx)
	VMULSS(dd, sx, sx)
	VMOVSS(sx, Mem{Base: s})
	Label("quantX_next")
	ADDQ(U32(128), x)
	ADDQ(U8(32), q)
	ADDQ(U8(4), d)
	ADDQ(U8(4), s)
	DECQ(nb)
	JMP(LabelRef("quantX_loop"))
	Label("quantX_done")
	VZEROUPPER()
	RET()
}

// qdot emits qdot8[V]_1xR, the 8-bit matrix-vector tile: for r < R
//
//	out[r] = Σ_{b<nb} f16(d[r*ldd+b]) · xd[b] · Σ_{j<32} q(r, b, j) · xq[32b+j]
//
// over int8 activations xq (one float32 scale xd per block of 32) and the rows' blocks at w
// (ldw bytes per row, 32 int8 per block). The AVX2 route multiplies bytes with VPMADDUBSW
// (unsigned × signed: the weights are made unsigned by moving their signs onto x with
// VPSIGNB) and pairs with VPMADDWD; the VNNI route (V, AVX-512 VNNI on ymm registers) does
// both with one VPDPBUSD. The arithmetic per output is the canonical one of the package
// comment, while the next tile's rows are prefetched.
func qdot(R int, vnni bool) {
	v := ""
	if vnni {
		v = "V"
	}
	name := fmt.Sprintf("qdot8%s_1x%d", v, R)
	TEXT(name, NOSPLIT, "func(out *float32, xq *int8, xd *float32, w *byte, ldw int, d *uint16, ldd int, nb int)")
	route := "AVX2"
	if vnni {
		route = "AVX-512 VNNI"
	}
	Doc(fmt.Sprintf("%s computes %d rows of 8-bit blocks · int8 x with %s (see qdot in asm/quant/main.go).", name, R, route))

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
	// late: on the Zen 3 machine this doubled the speed of a 75968×896 product.
	var pfp reg.GPVirtual
	if R != 3 {
		pfp = GP64()
		l := Load(Param("ldw"), GP64())
		SHLQ(U8(map[int]uint8{1: 0, 2: 1, 4: 2}[R]), l)
		LEAQ(Mem{Base: ws[0], Index: l, Scale: 1}, pfp)
	}
	var ones reg.VecVirtual
	if !vnni {
		ones = splat(0x00010001)
	}
	acc := make([]reg.VecVirtual, R)
	for r := range acc {
		acc[r] = YMM()
		VXORPS(acc[r], acc[r], acc[r])
	}
	b, i := GP64(), GP64() // block index; byte offset of the block in a row (32b)
	XORQ(b, b)
	XORQ(i, i)
	const bpb = 32 // weight bytes per block
	// block emits one block (j blocks past b and i) of every row; sc(r) gives its scale
	// product dw·dx, as a memory broadcast or computed from the float16 scale.
	block := func(j int, sc func(r int) reg.VecVirtual) {
		xv := YMM()
		VMOVDQU(Mem{Base: xq, Index: i, Scale: 1, Disp: j * 32}, xv)
		if pfp != nil {
			PREFETCHT0(Mem{Base: pfp, Index: i, Scale: uint8(R), Disp: j * bpb * R})
			if R == 4 {
				PREFETCHT0(Mem{Base: pfp, Index: i, Scale: 4, Disp: j*bpb*R + 64})
			}
		}
		for r := 0; r < R; r++ {
			wv, u, sgn := YMM(), YMM(), YMM() // the weights, |w| and x with the signs of w
			VMOVDQU(Mem{Base: ws[r], Index: i, Scale: 1, Disp: j * bpb}, wv)
			VPABSB(wv, u)
			VPSIGNB(wv, xv, sgn)
			p := YMM()
			dot8(p, u, sgn, ones, vnni)
			VCVTDQ2PS(p, p)
			VFMADD231PS(p, sc(r), acc[r])
		}
	}
	// Main loop, 8 blocks per step: the scale products of the 8 blocks of each row,
	// f16(d)·xd, are computed 8 at a time into the frame and broadcast from there.
	frame := AllocLocal(32 * R)
	n8 := GP64()
	MOVQ(nb, n8)
	ANDQ(I32(-8), n8)
	Label(name + "_loop8")
	CMPQ(b, n8)
	JGE(LabelRef(name + "_loop"))
	for r := 0; r < R; r++ {
		sv := YMM()
		VCVTPH2PS(Mem{Base: ds[r], Index: b, Scale: 2}, sv)
		VMULPS(Mem{Base: xd, Index: b, Scale: 4}, sv, sv)
		VMOVUPS(sv, frame.Offset(32*r))
	}
	for j := 0; j < 8; j++ {
		block(j, func(r int) reg.VecVirtual {
			sc := YMM()
			VBROADCASTSS(frame.Offset(32*r+4*j), sc)
			return sc
		})
	}
	ADDQ(U8(8), b)
	ADDQ(U32(uint32(8*bpb)), i)
	JMP(LabelRef(name + "_loop8"))
	// The last nb mod 8 blocks one at a time.
	Label(name + "_loop")
	CMPQ(b, nb)
	JGE(LabelRef(name + "_blocks_done"))
	dx := YMM()
	VBROADCASTSS(Mem{Base: xd, Index: b, Scale: 4}, dx)
	block(0, func(r int) reg.VecVirtual {
		sc := YMM()
		VPBROADCASTW(Mem{Base: ds[r], Index: b, Scale: 2}, sc.AsX())
		VCVTPH2PS(sc.AsX(), sc)
		VMULPS(dx, sc, sc)
		return sc
	})
	INCQ(b)
	ADDQ(U8(uint8(bpb)), i)
	JMP(LabelRef(name + "_loop"))
	Label(name + "_blocks_done")

	out := Load(Param("out"), GP64())
	for r := range acc {
		reduce1(acc[r], Mem{Base: out, Disp: 4 * r})
	}
	VZEROUPPER()
	RET()
}

// qmm emits qmm8[V]_RxT, the 8-bit matrix-matrix tile: for r < R and t < T
//
//	out[t*ldo+r] = qdot of weight row r with activation row t
//
// with T activation rows at xq (ldx bytes apart; their block scales xd ldxd float32 apart)
// and R weight rows as for qdot. Each block's weights are read once for the T rows and each
// activation block once for the R rows; every output gets exactly qdot's operations (see
// the package comment), so a row's result does not depend on the batch it is computed in.
// The weights keep their sign: the activations' signs move onto them (VPSIGNB) and |x| is
// the unsigned factor, which gives the same integer sums as qdot's |w|·sign(w)x.
func qmm(R, T int, vnni bool) {
	v := ""
	if vnni {
		v = "V"
	}
	name := fmt.Sprintf("qmm8%s_%dx%d", v, R, T)
	TEXT(name, NOSPLIT, "func(out *float32, ldo int, xq *int8, ldx int, xd *float32, ldxd int, w *byte, ldw int, d *uint16, ldd int, nb int)")
	route := "AVX2"
	if vnni {
		route = "AVX-512 VNNI"
	}
	Doc(fmt.Sprintf("%s computes %d weight rows × %d activation rows of 8-bit blocks with %s (see qmm in asm/quant/main.go).", name, R, T, route))

	// Row pointers advance block by block; row r of w is wp + r·ldw (ldw3 = 3·ldw for r = 3),
	// likewise the scales, and activation row t is xp + t·ldx.
	wp := Load(Param("w"), GP64())
	ldw := Load(Param("ldw"), GP64())
	dp := Load(Param("d"), GP64())
	ldd := Load(Param("ldd"), GP64())
	SHLQ(U8(1), ldd)
	var ldw3, ldd3 reg.Register
	if R == 4 {
		ldw3, ldd3 = GP64(), GP64()
		LEAQ(Mem{Base: ldw, Index: ldw, Scale: 2}, ldw3)
		LEAQ(Mem{Base: ldd, Index: ldd, Scale: 2}, ldd3)
	}
	rowMem := func(base, ld, ld3 reg.Register, r int) Mem {
		switch r {
		case 0:
			return Mem{Base: base}
		case 1:
			return Mem{Base: base, Index: ld, Scale: 1}
		case 2:
			return Mem{Base: base, Index: ld, Scale: 2}
		}
		return Mem{Base: base, Index: ld3, Scale: 1}
	}
	xp := Load(Param("xq"), GP64())
	xdp := Load(Param("xd"), GP64())
	var ldx, ldxd reg.Register
	if T > 1 {
		ldx = Load(Param("ldx"), GP64())
		ldxd = Load(Param("ldxd"), GP64())
		SHLQ(U8(2), ldxd)
	}
	tokMem := func(base, ld reg.Register, t int) Mem {
		if t == 0 {
			return Mem{Base: base}
		}
		return Mem{Base: base, Index: ld, Scale: 1}
	}
	cnt := Load(Param("nb"), GP64())

	var ones reg.VecVirtual
	if !vnni {
		ones = splat(0x00010001)
	}
	acc := make([][]reg.VecVirtual, R)
	for r := range acc {
		acc[r] = make([]reg.VecVirtual, T)
		for t := range acc[r] {
			acc[r][t] = YMM()
			VXORPS(acc[r][t], acc[r][t], acc[r][t])
		}
	}
	const bpb = 32 // weight bytes per block
	at := func(m Mem, disp int) Mem { m.Disp += disp; return m }
	// block emits block j (past the pointers) of every row pair; sc(r, t) gives its scale
	// product dw·dx.
	block := func(j int, sc func(r, t int) reg.VecVirtual) {
		ux := make([]reg.VecVirtual, T) // |x| of each activation row
		for t := range ux {
			ux[t] = YMM()
			VPABSB(at(tokMem(xp, ldx, t), 32*j), ux[t])
		}
		for r := 0; r < R; r++ {
			wv := YMM()
			VMOVDQU(at(rowMem(wp, ldw, ldw3, r), bpb*j), wv)
			for t := 0; t < T; t++ {
				p, s := YMM(), YMM()
				VPSIGNB(at(tokMem(xp, ldx, t), 32*j), wv, s) // w with the sign of x
				dot8(p, ux[t], s, ones, vnni)
				VCVTDQ2PS(p, p)
				VFMADD231PS(p, sc(r, t), acc[r][t])
			}
		}
	}
	// Main loop, 8 blocks per step: the scale products of each row pair for the 8 blocks,
	// f16(dw)·dx, 8 at a time into the frame (the same products qdot uses).
	frame := AllocLocal(32 * R * T)
	Label(name + "_loop8")
	CMPQ(cnt, U8(8))
	JL(LabelRef(name + "_loop"))
	for r := 0; r < R; r++ {
		sv := YMM()
		VCVTPH2PS(rowMem(dp, ldd, ldd3, r), sv)
		for t := 0; t < T; t++ {
			pv := YMM()
			VMULPS(tokMem(xdp, ldxd, t), sv, pv)
			VMOVUPS(pv, frame.Offset(32*(r*T+t)))
		}
	}
	for j := 0; j < 8; j++ {
		block(j, func(r, t int) reg.VecVirtual {
			sc := YMM()
			VBROADCASTSS(frame.Offset(32*(r*T+t)+4*j), sc)
			return sc
		})
	}
	ADDQ(U32(uint32(8*bpb)), wp)
	ADDQ(U8(16), dp)
	ADDQ(U32(256), xp)
	ADDQ(U8(32), xdp)
	SUBQ(U8(8), cnt)
	JMP(LabelRef(name + "_loop8"))
	// The last nb mod 8 blocks one at a time.
	Label(name + "_loop")
	TESTQ(cnt, cnt)
	JZ(LabelRef(name + "_blocks_done"))
	dws := make([]reg.VecVirtual, R)
	block(0, func(r, t int) reg.VecVirtual {
		if t == 0 {
			dws[r] = YMM()
			VPBROADCASTW(rowMem(dp, ldd, ldd3, r), dws[r].AsX())
			VCVTPH2PS(dws[r].AsX(), dws[r])
		}
		sc := YMM()
		VBROADCASTSS(tokMem(xdp, ldxd, t), sc)
		VMULPS(sc, dws[r], sc) // dw·dx, as qdot's dx·dw: the same product
		return sc
	})
	ADDQ(U8(uint8(bpb)), wp)
	ADDQ(U8(2), dp)
	ADDQ(U8(32), xp)
	ADDQ(U8(4), xdp)
	DECQ(cnt)
	JMP(LabelRef(name + "_loop"))
	Label(name + "_blocks_done")

	out := Load(Param("out"), GP64())
	var ldo reg.Register
	if T > 1 {
		ldo = Load(Param("ldo"), GP64())
		SHLQ(U8(2), ldo)
	}
	for t := 0; t < T; t++ {
		for r := 0; r < R; r++ {
			m := tokMem(out, ldo, t)
			m.Disp = 4 * r
			reduce1(acc[r][t], m)
		}
	}
	VZEROUPPER()
	RET()
}

// dequant emits dequant8: dst (nb·32 float32) = the nb 8-bit blocks at q widened, each
// scaled by its float16 scale d[b]. The embedding lookup and DequantizeRow widen rows this
// way (4-bit rows are widened in Go: they are interleaved by groups of 8).
func dequant() {
	TEXT("dequant8", NOSPLIT, "func(dst *float32, q *byte, d *uint16, nb int)")
	Doc("dequant8 widens nb blocks of 8-bit weights to float32 (see dequant in asm/quant/main.go).")
	dst := Load(Param("dst"), GP64())
	q := Load(Param("q"), GP64())
	d := Load(Param("d"), GP64())
	nb := Load(Param("nb"), GP64())
	b := GP64()
	XORQ(b, b)
	Label("dequant8_loop")
	CMPQ(b, nb)
	JGE(LabelRef("dequant8_done"))
	sc := YMM()
	VPBROADCASTW(Mem{Base: d, Index: b, Scale: 2}, sc.AsX())
	VCVTPH2PS(sc.AsX(), sc)
	for g := 0; g < 4; g++ {
		v := YMM()
		VPMOVSXBD(Mem{Base: q, Disp: 8 * g}, v)
		VCVTDQ2PS(v, v)
		VMULPS(sc, v, v)
		VMOVUPS(v, Mem{Base: dst, Disp: 32 * g})
	}
	ADDQ(U8(32), q)
	ADDQ(U8(128), dst)
	INCQ(b)
	JMP(LabelRef("dequant8_loop"))
	Label("dequant8_done")
	VZEROUPPER()
	RET()
}

// q4Tiles lists the 4-bit prefill tiles generated, {groups of 8 weight rows, activation
// rows}: 1×4, and 1×1..1×3 for the last activation rows.
var q4Tiles = [][2]int{{1, 1}, {1, 2}, {1, 3}, {1, 4}}

// qg4 emits qg4[V][Ppf]_GxT, the 4-bit tile on interleaved groups of 8 weight rows: for
// g < G, i < 8 and t < T
//
//	out[t*ldo+8g+i] = Σ_{b<nb} fma(m(g,b,i), xs[t,b], fma(float32(Σ_{j<32} q(g,b,i,j)·xq[t,32b+j]), f16(d(g,b,i))·xd[t,b], ·))
//
// block by block in order, each output in its own lane of one accumulator (no reduction).
// Group g's block b is 128 bytes at w + g·ldw + 128b: four 32-byte pieces k, each the bytes
// 4k..4k+3 of the rows' 16-byte blocks in row order (low nibbles columns 4k.., high nibbles
// 16+4k..), so one VPAND gives columns 4k..4k+3 of all 8 rows and a VPSRLW+VPAND columns
// 16+4k..; the activation's 4 bytes are broadcast against them. Its 8 float16 scales are at
// d + g·ldd + 8b and offsets at m + g·ldm + 8b (elements). The block's integer sum is exact:
// VPMADDUBSW pairs (levels ≤ 15, |x| ≤ 127: |pair| ≤ 3810) summed over the 8 pieces in int16
// (|sum| ≤ 30480), then VPMADDWD with ones; the VNNI route accumulates the same sums with
// VPDPBUSD. Every output gets these operations whatever the tile, so rows are batch-invariant.
// With pf > 0 each block also prefetches the two cache lines pf bytes ahead on every group's
// stream (the decode tiles).
func qg4(G, T, pf int, vnni bool) {
	v := ""
	if vnni {
		v = "V"
	}
	if pf > 0 {
		v += fmt.Sprintf("P%d", pf)
	}
	name := fmt.Sprintf("qg4%s_%dx%d", v, G, T)
	TEXT(name, NOSPLIT, "func(out *float32, ldo int, xq *int8, ldx int, xd *float32, xs *float32, ldxd int, w *byte, ldw int, d *uint16, ldd int, m *uint16, ldm int, nb int)")
	route := "AVX2"
	if vnni {
		route = "AVX-512 VNNI"
	}
	Doc(fmt.Sprintf("%s computes %d groups of 8 weight rows × %d activation rows of interleaved 4-bit blocks with %s (see qg4 in asm/quant/main.go).", name, G, T, route))

	wp := Load(Param("w"), GP64())
	dp := Load(Param("d"), GP64())
	mp := Load(Param("m"), GP64())
	var ldw, ldd, ldm reg.Register
	if G > 1 {
		ldw = Load(Param("ldw"), GP64())
		ldd = Load(Param("ldd"), GP64())
		SHLQ(U8(1), ldd)
		ldm = Load(Param("ldm"), GP64())
		SHLQ(U8(1), ldm)
	}
	grp := func(base, ld reg.Register, g, disp int) Mem {
		if g == 0 {
			return Mem{Base: base, Disp: disp}
		}
		return Mem{Base: base, Index: ld, Scale: 1, Disp: disp}
	}
	xp := Load(Param("xq"), GP64())
	xdp := Load(Param("xd"), GP64())
	xsp := Load(Param("xs"), GP64())
	var ldx, ldxd, ldx3, ldxd3 reg.Register
	if T > 1 {
		ldx = Load(Param("ldx"), GP64())
		ldxd = Load(Param("ldxd"), GP64())
		SHLQ(U8(2), ldxd)
	}
	if T > 3 {
		ldx3, ldxd3 = GP64(), GP64()
		LEAQ(Mem{Base: ldx, Index: ldx, Scale: 2}, ldx3)
		LEAQ(Mem{Base: ldxd, Index: ldxd, Scale: 2}, ldxd3)
	}
	tok := func(base, ld, ld3 reg.Register, t, disp int) Mem {
		switch t {
		case 0:
			return Mem{Base: base, Disp: disp}
		case 1:
			return Mem{Base: base, Index: ld, Scale: 1, Disp: disp}
		case 2:
			return Mem{Base: base, Index: ld, Scale: 2, Disp: disp}
		}
		return Mem{Base: base, Index: ld3, Scale: 1, Disp: disp}
	}
	cnt := Load(Param("nb"), GP64())
	mask := splat(0x0f0f0f0f)
	var ones reg.VecVirtual
	if !vnni {
		ones = splat(0x00010001)
	}
	acc := make([][]reg.VecVirtual, G)
	for g := range acc {
		acc[g] = make([]reg.VecVirtual, T)
		for t := range acc[g] {
			acc[g][t] = YMM()
			VXORPS(acc[g][t], acc[g][t], acc[g][t])
		}
	}
	Label(name + "_loop")
	TESTQ(cnt, cnt)
	JZ(LabelRef(name + "_done"))
	isum := make([][]reg.VecVirtual, G)
	for g := range isum {
		isum[g] = make([]reg.VecVirtual, T)
		for t := range isum[g] {
			isum[g][t] = YMM()
			if vnni {
				VPXOR(isum[g][t], isum[g][t], isum[g][t])
			}
		}
	}
	if pf > 0 {
		for g := 0; g < G; g++ {
			PREFETCHT0(grp(wp, ldw, g, pf))
			PREFETCHT0(grp(wp, ldw, g, pf+64))
		}
	}
	for k := 0; k < 4; k++ {
		u := make([][2]reg.VecVirtual, G) // columns 4k.. and 16+4k.. of group g
		for g := range u {
			raw := YMM()
			VMOVDQU(grp(wp, ldw, g, 32*k), raw)
			u[g] = [2]reg.VecVirtual{YMM(), YMM()}
			VPAND(mask, raw, u[g][0])
			VPSRLW(U8(4), raw, u[g][1])
			VPAND(mask, u[g][1], u[g][1])
		}
		for t := 0; t < T; t++ {
			for h := 0; h < 2; h++ {
				bx := YMM()
				VPBROADCASTD(tok(xp, ldx, ldx3, t, 4*k+16*h), bx)
				for g := 0; g < G; g++ {
					switch {
					case vnni:
						Instruction(&ir.Instruction{Opcode: "VPDPBUSD", Operands: []Op{bx, u[g][h], isum[g][t]},
							Inputs: []Op{bx, u[g][h], isum[g][t]}, Outputs: []Op{isum[g][t]}, ISA: []string{"AVX512VL", "AVX512_VNNI"}})
					case k == 0 && h == 0:
						VPMADDUBSW(bx, u[g][h], isum[g][t])
					default:
						p := YMM()
						VPMADDUBSW(bx, u[g][h], p)
						VPADDW(p, isum[g][t], isum[g][t])
					}
				}
			}
		}
	}
	// acc = fma(float32(isum), dw·dx, acc), then acc = fma(m, xs, acc), per output.
	for g := 0; g < G; g++ {
		dw := YMM()
		VCVTPH2PS(grp(dp, ldd, g, 0), dw)
		for t := 0; t < T; t++ {
			if !vnni {
				VPMADDWD(ones, isum[g][t], isum[g][t])
			}
			VCVTDQ2PS(isum[g][t], isum[g][t])
			sc := YMM()
			VBROADCASTSS(tok(xdp, ldxd, ldxd3, t, 0), sc)
			VMULPS(sc, dw, sc)
			VFMADD231PS(isum[g][t], sc, acc[g][t])
		}
		mv := YMM()
		VCVTPH2PS(grp(mp, ldm, g, 0), mv)
		for t := 0; t < T; t++ {
			sc := YMM()
			VBROADCASTSS(tok(xsp, ldxd, ldxd3, t, 0), sc)
			VFMADD231PS(mv, sc, acc[g][t])
		}
	}
	ADDQ(U32(128), wp)
	ADDQ(U8(16), dp)
	ADDQ(U8(16), mp)
	ADDQ(U8(32), xp)
	ADDQ(U8(4), xdp)
	ADDQ(U8(4), xsp)
	DECQ(cnt)
	JMP(LabelRef(name + "_loop"))
	Label(name + "_done")
	out := Load(Param("out"), GP64())
	var ldo, ldo3 reg.Register
	if T > 1 {
		ldo = Load(Param("ldo"), GP64())
		SHLQ(U8(2), ldo)
	}
	if T > 3 {
		ldo3 = GP64()
		LEAQ(Mem{Base: ldo, Index: ldo, Scale: 2}, ldo3)
	}
	for g := 0; g < G; g++ {
		for t := 0; t < T; t++ {
			VMOVUPS(acc[g][t], tok(out, ldo, ldo3, t, 32*g))
		}
	}
	VZEROUPPER()
	RET()
}
