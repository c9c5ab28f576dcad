//go:build amd64 && !purego

#include "textflag.h"

// func dotTileAVX(dst, q, k *float32, d, stride, nk int, scale float32)
TEXT ·dotTileAVX(SB), NOSPLIT, $0-52
	MOVQ dst+0(FP), DI
	MOVQ q+8(FP), SI
	MOVQ k+16(FP), DX
	MOVQ d+24(FP), BX
	MOVQ stride+32(FP), R8
	MOVQ nk+40(FP), R9
	VBROADCASTSS scale+48(FP), Y15
	SHLQ $2, BX // d in bytes
	SHLQ $2, R8 // stride in bytes

dkeys:
	CMPQ R9, $4
	JL   ddone
	MOVQ DX, R10
	LEAQ (R10)(R8*1), R11
	LEAQ (R11)(R8*1), R12
	LEAQ (R12)(R8*1), R13
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	XORQ AX, AX

dloop16:
	LEAQ 64(AX), R14
	CMPQ R14, BX
	JG   dtail8
	VMOVUPS (SI)(AX*1), Y8
	VMOVUPS 32(SI)(AX*1), Y9
	VFMADD231PS (R10)(AX*1), Y8, Y0
	VFMADD231PS (R11)(AX*1), Y8, Y1
	VFMADD231PS (R12)(AX*1), Y8, Y2
	VFMADD231PS (R13)(AX*1), Y8, Y3
	VFMADD231PS 32(R10)(AX*1), Y9, Y4
	VFMADD231PS 32(R11)(AX*1), Y9, Y5
	VFMADD231PS 32(R12)(AX*1), Y9, Y6
	VFMADD231PS 32(R13)(AX*1), Y9, Y7
	MOVQ R14, AX
	JMP  dloop16

dtail8:
	CMPQ AX, BX
	JGE  dreduce
	VMOVUPS (SI)(AX*1), Y8
	VFMADD231PS (R10)(AX*1), Y8, Y0
	VFMADD231PS (R11)(AX*1), Y8, Y1
	VFMADD231PS (R12)(AX*1), Y8, Y2
	VFMADD231PS (R13)(AX*1), Y8, Y3

dreduce:
	VADDPS  Y4, Y0, Y0
	VADDPS  Y5, Y1, Y1
	VADDPS  Y6, Y2, Y2
	VADDPS  Y7, Y3, Y3
	VHADDPS Y1, Y0, Y0 // [a01 a23 b01 b23 | a45 a67 b45 b67]
	VHADDPS Y3, Y2, Y2 // [c01 c23 e01 e23 | ...]
	VHADDPS Y2, Y0, Y0 // [a0-3 b0-3 c0-3 e0-3 | a4-7 b4-7 c4-7 e4-7]
	VEXTRACTF128 $1, Y0, X1
	VADDPS  X1, X0, X0
	VMULPS  X15, X0, X0
	VMOVUPS X0, (DI)
	ADDQ    $16, DI
	LEAQ    (DX)(R8*4), DX
	SUBQ    $4, R9
	JMP     dkeys

ddone:
	VZEROUPPER
	RET

// func pvTileAVX(o, p, v *float32, d, stride, nk int)
// o[:d] += Σ_j p[j]·v_j for j < nk, v_j at v + j·stride floats, d a multiple
// of 8. o is kept in registers over all keys, 64 floats (8 accumulators) at a
// time, then 8 at a time.
TEXT ·pvTileAVX(SB), NOSPLIT, $0-48
	MOVQ o+0(FP), DI
	MOVQ p+8(FP), SI
	MOVQ v+16(FP), DX
	MOVQ d+24(FP), BX
	MOVQ stride+32(FP), R8
	MOVQ nk+40(FP), R9
	SHLQ $2, R8
	TESTQ R9, R9
	JLE  pdone

pchunk64:
	CMPQ BX, $64
	JL   pchunk8
	VMOVUPS 0(DI), Y0
	VMOVUPS 32(DI), Y1
	VMOVUPS 64(DI), Y2
	VMOVUPS 96(DI), Y3
	VMOVUPS 128(DI), Y4
	VMOVUPS 160(DI), Y5
	VMOVUPS 192(DI), Y6
	VMOVUPS 224(DI), Y7
	MOVQ DX, R10
	XORQ CX, CX

pkey64:
	VBROADCASTSS (SI)(CX*4), Y8
	VFMADD231PS 0(R10), Y8, Y0
	VFMADD231PS 32(R10), Y8, Y1
	VFMADD231PS 64(R10), Y8, Y2
	VFMADD231PS 96(R10), Y8, Y3
	VFMADD231PS 128(R10), Y8, Y4
	VFMADD231PS 160(R10), Y8, Y5
	VFMADD231PS 192(R10), Y8, Y6
	VFMADD231PS 224(R10), Y8, Y7
	ADDQ R8, R10
	INCQ CX
	CMPQ CX, R9
	JL   pkey64
	VMOVUPS Y0, 0(DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	VMOVUPS Y4, 128(DI)
	VMOVUPS Y5, 160(DI)
	VMOVUPS Y6, 192(DI)
	VMOVUPS Y7, 224(DI)
	ADDQ $256, DI
	ADDQ $256, DX
	SUBQ $64, BX
	JMP  pchunk64

pchunk8:
	CMPQ BX, $8
	JL   pdone
	VMOVUPS (DI), Y0
	MOVQ DX, R10
	XORQ CX, CX

pkey8:
	VBROADCASTSS (SI)(CX*4), Y8
	VFMADD231PS (R10), Y8, Y0
	ADDQ R8, R10
	INCQ CX
	CMPQ CX, R9
	JL   pkey8
	VMOVUPS Y0, (DI)
	ADDQ $32, DI
	ADDQ $32, DX
	SUBQ $8, BX
	JMP  pchunk8

pdone:
	VZEROUPPER
	RET

// Constants for expTileAVX, each replicated over 8 lanes (32 bytes).
DATA expc<>+0(SB)/4, $0xc2aeac4f // lo
DATA expc<>+4(SB)/4, $0xc2aeac4f // lo
DATA expc<>+8(SB)/4, $0xc2aeac4f // lo
DATA expc<>+12(SB)/4, $0xc2aeac4f // lo
DATA expc<>+16(SB)/4, $0xc2aeac4f // lo
DATA expc<>+20(SB)/4, $0xc2aeac4f // lo
DATA expc<>+24(SB)/4, $0xc2aeac4f // lo
DATA expc<>+28(SB)/4, $0xc2aeac4f // lo
DATA expc<>+32(SB)/4, $0x3fb8aa3b // log2e
DATA expc<>+36(SB)/4, $0x3fb8aa3b // log2e
DATA expc<>+40(SB)/4, $0x3fb8aa3b // log2e
DATA expc<>+44(SB)/4, $0x3fb8aa3b // log2e
DATA expc<>+48(SB)/4, $0x3fb8aa3b // log2e
DATA expc<>+52(SB)/4, $0x3fb8aa3b // log2e
DATA expc<>+56(SB)/4, $0x3fb8aa3b // log2e
DATA expc<>+60(SB)/4, $0x3fb8aa3b // log2e
DATA expc<>+64(SB)/4, $0x3f000000 // half
DATA expc<>+68(SB)/4, $0x3f000000 // half
DATA expc<>+72(SB)/4, $0x3f000000 // half
DATA expc<>+76(SB)/4, $0x3f000000 // half
DATA expc<>+80(SB)/4, $0x3f000000 // half
DATA expc<>+84(SB)/4, $0x3f000000 // half
DATA expc<>+88(SB)/4, $0x3f000000 // half
DATA expc<>+92(SB)/4, $0x3f000000 // half
DATA expc<>+96(SB)/4, $0x3f318000 // c1
DATA expc<>+100(SB)/4, $0x3f318000 // c1
DATA expc<>+104(SB)/4, $0x3f318000 // c1
DATA expc<>+108(SB)/4, $0x3f318000 // c1
DATA expc<>+112(SB)/4, $0x3f318000 // c1
DATA expc<>+116(SB)/4, $0x3f318000 // c1
DATA expc<>+120(SB)/4, $0x3f318000 // c1
DATA expc<>+124(SB)/4, $0x3f318000 // c1
DATA expc<>+128(SB)/4, $0xb95e8083 // c2
DATA expc<>+132(SB)/4, $0xb95e8083 // c2
DATA expc<>+136(SB)/4, $0xb95e8083 // c2
DATA expc<>+140(SB)/4, $0xb95e8083 // c2
DATA expc<>+144(SB)/4, $0xb95e8083 // c2
DATA expc<>+148(SB)/4, $0xb95e8083 // c2
DATA expc<>+152(SB)/4, $0xb95e8083 // c2
DATA expc<>+156(SB)/4, $0xb95e8083 // c2
DATA expc<>+160(SB)/4, $0x39506967 // p0
DATA expc<>+164(SB)/4, $0x39506967 // p0
DATA expc<>+168(SB)/4, $0x39506967 // p0
DATA expc<>+172(SB)/4, $0x39506967 // p0
DATA expc<>+176(SB)/4, $0x39506967 // p0
DATA expc<>+180(SB)/4, $0x39506967 // p0
DATA expc<>+184(SB)/4, $0x39506967 // p0
DATA expc<>+188(SB)/4, $0x39506967 // p0
DATA expc<>+192(SB)/4, $0x3ab743ce // p1
DATA expc<>+196(SB)/4, $0x3ab743ce // p1
DATA expc<>+200(SB)/4, $0x3ab743ce // p1
DATA expc<>+204(SB)/4, $0x3ab743ce // p1
DATA expc<>+208(SB)/4, $0x3ab743ce // p1
DATA expc<>+212(SB)/4, $0x3ab743ce // p1
DATA expc<>+216(SB)/4, $0x3ab743ce // p1
DATA expc<>+220(SB)/4, $0x3ab743ce // p1
DATA expc<>+224(SB)/4, $0x3c088908 // p2
DATA expc<>+228(SB)/4, $0x3c088908 // p2
DATA expc<>+232(SB)/4, $0x3c088908 // p2
DATA expc<>+236(SB)/4, $0x3c088908 // p2
DATA expc<>+240(SB)/4, $0x3c088908 // p2
DATA expc<>+244(SB)/4, $0x3c088908 // p2
DATA expc<>+248(SB)/4, $0x3c088908 // p2
DATA expc<>+252(SB)/4, $0x3c088908 // p2
DATA expc<>+256(SB)/4, $0x3d2aa9c1 // p3
DATA expc<>+260(SB)/4, $0x3d2aa9c1 // p3
DATA expc<>+264(SB)/4, $0x3d2aa9c1 // p3
DATA expc<>+268(SB)/4, $0x3d2aa9c1 // p3
DATA expc<>+272(SB)/4, $0x3d2aa9c1 // p3
DATA expc<>+276(SB)/4, $0x3d2aa9c1 // p3
DATA expc<>+280(SB)/4, $0x3d2aa9c1 // p3
DATA expc<>+284(SB)/4, $0x3d2aa9c1 // p3
DATA expc<>+288(SB)/4, $0x3e2aaaaa // p4
DATA expc<>+292(SB)/4, $0x3e2aaaaa // p4
DATA expc<>+296(SB)/4, $0x3e2aaaaa // p4
DATA expc<>+300(SB)/4, $0x3e2aaaaa // p4
DATA expc<>+304(SB)/4, $0x3e2aaaaa // p4
DATA expc<>+308(SB)/4, $0x3e2aaaaa // p4
DATA expc<>+312(SB)/4, $0x3e2aaaaa // p4
DATA expc<>+316(SB)/4, $0x3e2aaaaa // p4
DATA expc<>+320(SB)/4, $0x3f000000 // p5
DATA expc<>+324(SB)/4, $0x3f000000 // p5
DATA expc<>+328(SB)/4, $0x3f000000 // p5
DATA expc<>+332(SB)/4, $0x3f000000 // p5
DATA expc<>+336(SB)/4, $0x3f000000 // p5
DATA expc<>+340(SB)/4, $0x3f000000 // p5
DATA expc<>+344(SB)/4, $0x3f000000 // p5
DATA expc<>+348(SB)/4, $0x3f000000 // p5
DATA expc<>+352(SB)/4, $0x3f800000 // one
DATA expc<>+356(SB)/4, $0x3f800000 // one
DATA expc<>+360(SB)/4, $0x3f800000 // one
DATA expc<>+364(SB)/4, $0x3f800000 // one
DATA expc<>+368(SB)/4, $0x3f800000 // one
DATA expc<>+372(SB)/4, $0x3f800000 // one
DATA expc<>+376(SB)/4, $0x3f800000 // one
DATA expc<>+380(SB)/4, $0x3f800000 // one
DATA expc<>+384(SB)/4, $0x0000007f // i127
DATA expc<>+388(SB)/4, $0x0000007f // i127
DATA expc<>+392(SB)/4, $0x0000007f // i127
DATA expc<>+396(SB)/4, $0x0000007f // i127
DATA expc<>+400(SB)/4, $0x0000007f // i127
DATA expc<>+404(SB)/4, $0x0000007f // i127
DATA expc<>+408(SB)/4, $0x0000007f // i127
DATA expc<>+412(SB)/4, $0x0000007f // i127
GLOBL expc<>(SB), RODATA|NOPTR, $416

// func expTileAVX(row *float32, n int, m float32) float32
// row[i] = exp(row[i]-m) for i < n (a multiple of 8; every row[i] <= m),
// returning the sum. Cephes-style: 2^k·p(r) with a degree-6 polynomial,
// relative error ~1e-7; arguments below -87.3 (and -Inf) give exactly 0.
TEXT ·expTileAVX(SB), NOSPLIT, $0-28
	MOVQ row+0(FP), DI
	MOVQ n+8(FP), CX
	VBROADCASTSS m+16(FP), Y14
	VMOVUPS expc<>+32(SB), Y15
	VMOVUPS expc<>+0(SB), Y12
	VXORPS Y13, Y13, Y13
	SHLQ $2, CX
	XORQ AX, AX

eloop:
	CMPQ AX, CX
	JGE  edone
	VMOVUPS (DI)(AX*1), Y0
	VSUBPS  Y14, Y0, Y0
	VCMPPS  $13, Y12, Y0, Y4 // keep = x >= lo
	VMAXPS  Y12, Y0, Y0
	VMOVUPS expc<>+64(SB), Y1
	VFMADD231PS Y15, Y0, Y1 // x·log2e + 0.5
	VROUNDPS $1, Y1, Y1     // k = floor
	VFNMADD231PS expc<>+96(SB), Y1, Y0
	VFNMADD231PS expc<>+128(SB), Y1, Y0 // r = x - k·ln2
	VMULPS  Y0, Y0, Y2      // r²
	VMOVUPS expc<>+160(SB), Y3
	VFMADD213PS expc<>+192(SB), Y0, Y3
	VFMADD213PS expc<>+224(SB), Y0, Y3
	VFMADD213PS expc<>+256(SB), Y0, Y3
	VFMADD213PS expc<>+288(SB), Y0, Y3
	VFMADD213PS expc<>+320(SB), Y0, Y3
	VFMADD213PS Y0, Y2, Y3  // p·r² + r
	VADDPS  expc<>+352(SB), Y3, Y3
	VCVTTPS2DQ Y1, Y1
	VPADDD  expc<>+384(SB), Y1, Y1
	VPSLLD  $23, Y1, Y1     // 2^k
	VMULPS  Y1, Y3, Y3
	VANDPS  Y4, Y3, Y3
	VMOVUPS Y3, (DI)(AX*1)
	VADDPS  Y3, Y13, Y13
	ADDQ    $32, AX
	JMP     eloop

edone:
	VEXTRACTF128 $1, Y13, X0
	VADDPS  X0, X13, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	VMOVSS  X0, ret+24(FP)
	VZEROUPPER
	RET

// func maxAVX(row *float32, n int) float32
// Maximum of row[:n], n a multiple of 8 and > 0.
TEXT ·maxAVX(SB), NOSPLIT, $0-20
	MOVQ row+0(FP), DI
	MOVQ n+8(FP), CX
	SHLQ $2, CX
	VMOVUPS (DI), Y0
	MOVQ $32, AX

mloop:
	CMPQ AX, CX
	JGE  mdone
	VMAXPS (DI)(AX*1), Y0, Y0
	ADDQ   $32, AX
	JMP    mloop

mdone:
	VEXTRACTF128 $1, Y0, X1
	VMAXPS  X1, X0, X0
	VPERMILPS $0x4e, X0, X1
	VMAXPS  X1, X0, X0
	VPERMILPS $0xb1, X0, X1
	VMAXPS  X1, X0, X0
	VMOVSS  X0, ret+16(FP)
	VZEROUPPER
	RET

// func dot2TileAVX(dst0, dst1, q0, q1, k *float32, d, stride, nk int, scale float32)
// dst0[j] = scale·q0·k_j and dst1[j] = scale·q1·k_j for j < nk (a multiple
// of 4), key j at k + j·stride floats, d a multiple of 8. Each key row is
// loaded once for both queries.
TEXT ·dot2TileAVX(SB), NOSPLIT, $0-68
	MOVQ dst0+0(FP), DI
	MOVQ dst1+8(FP), CX
	MOVQ q0+16(FP), SI
	MOVQ q1+24(FP), R15
	MOVQ k+32(FP), DX
	MOVQ d+40(FP), BX
	MOVQ stride+48(FP), R8
	MOVQ nk+56(FP), R9
	VBROADCASTSS scale+64(FP), Y15
	SHLQ $2, BX
	SHLQ $2, R8

tkeys:
	CMPQ R9, $4
	JL   tdone
	MOVQ DX, R10
	LEAQ (R10)(R8*1), R11
	LEAQ (R11)(R8*1), R12
	LEAQ (R12)(R8*1), R13
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	XORQ AX, AX

tloop:
	VMOVUPS (SI)(AX*1), Y8
	VMOVUPS (R15)(AX*1), Y9
	VMOVUPS (R10)(AX*1), Y10
	VFMADD231PS Y10, Y8, Y0
	VFMADD231PS Y10, Y9, Y4
	VMOVUPS (R11)(AX*1), Y11
	VFMADD231PS Y11, Y8, Y1
	VFMADD231PS Y11, Y9, Y5
	VMOVUPS (R12)(AX*1), Y12
	VFMADD231PS Y12, Y8, Y2
	VFMADD231PS Y12, Y9, Y6
	VMOVUPS (R13)(AX*1), Y13
	VFMADD231PS Y13, Y8, Y3
	VFMADD231PS Y13, Y9, Y7
	ADDQ $32, AX
	CMPQ AX, BX
	JL   tloop

	VHADDPS Y1, Y0, Y0
	VHADDPS Y3, Y2, Y2
	VHADDPS Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS  X1, X0, X0
	VMULPS  X15, X0, X0
	VMOVUPS X0, (DI)
	VHADDPS Y5, Y4, Y4
	VHADDPS Y7, Y6, Y6
	VHADDPS Y6, Y4, Y4
	VEXTRACTF128 $1, Y4, X5
	VADDPS  X5, X4, X4
	VMULPS  X15, X4, X4
	VMOVUPS X4, (CX)
	ADDQ    $16, DI
	ADDQ    $16, CX
	LEAQ    (DX)(R8*4), DX
	SUBQ    $4, R9
	JMP     tkeys

tdone:
	VZEROUPPER
	RET

// func deqBF16TileAVX(dst *float32, src *byte, d, stride, n int)
// dst[t][i] = float32(bf16 at src + 2·(t·stride+i)) for t < n, i < d; d a positive multiple of 8.
TEXT ·deqBF16TileAVX(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ d+16(FP), BX
	MOVQ stride+24(FP), R8
	MOVQ n+32(FP), R9
	SHLQ $1, R8 // stride in bytes
	TESTQ $31, BX
	JNZ   btok

	// d a multiple of 32: four independent widen-shift chains per step.
b32tok:
	TESTQ R9, R9
	JZ    bdone
	MOVQ  SI, R10
	XORQ  AX, AX

b32loop:
	VPMOVZXWD (R10), Y0
	VPMOVZXWD 16(R10), Y1
	VPMOVZXWD 32(R10), Y2
	VPMOVZXWD 48(R10), Y3
	VPSLLD    $16, Y0, Y0
	VPSLLD    $16, Y1, Y1
	VPSLLD    $16, Y2, Y2
	VPSLLD    $16, Y3, Y3
	VMOVUPS   Y0, (DI)
	VMOVUPS   Y1, 32(DI)
	VMOVUPS   Y2, 64(DI)
	VMOVUPS   Y3, 96(DI)
	ADDQ      $64, R10
	ADDQ      $128, DI
	ADDQ      $32, AX
	CMPQ      AX, BX
	JL        b32loop
	ADDQ      R8, SI
	DECQ      R9
	JMP       b32tok

btok:
	TESTQ R9, R9
	JZ    bdone
	MOVQ  SI, R10
	XORQ  AX, AX

bloop:
	VPMOVZXWD (R10), Y0
	VPSLLD    $16, Y0, Y0
	VMOVUPS   Y0, (DI)
	ADDQ      $16, R10
	ADDQ      $32, DI
	ADDQ      $8, AX
	CMPQ      AX, BX
	JL        bloop
	ADDQ      R8, SI
	DECQ      R9
	JMP       btok

bdone:
	VZEROUPPER
	RET

// func deqQ8TileAVX(dst *float32, src *byte, sc *float32, d, gs, stride, scStride, n int)
// dst[t][i] = int8(src[t·stride+i]) · sc[t·scStride + i/gs] for t < n, i < d; d and gs
// positive multiples of 8.
TEXT ·deqQ8TileAVX(SB), NOSPLIT, $0-64
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ sc+16(FP), DX
	MOVQ d+24(FP), BX
	MOVQ gs+32(FP), CX
	MOVQ stride+40(FP), R8
	MOVQ scStride+48(FP), R11
	MOVQ n+56(FP), R9
	SHLQ $2, R11 // scale stride in bytes
	CMPQ CX, $32
	JNE  qtok
	TESTQ $31, BX
	JNZ  qtok

	// Groups of 32 and d a multiple of 32: one scale broadcast and four independent
	// convert-multiply chains per group.
q32tok:
	TESTQ R9, R9
	JZ    qdone
	MOVQ  SI, R10
	MOVQ  DX, R12
	XORQ  AX, AX

q32loop:
	VBROADCASTSS (R12), Y1
	VPMOVSXBD    (R10), Y0
	VPMOVSXBD    8(R10), Y2
	VPMOVSXBD    16(R10), Y3
	VPMOVSXBD    24(R10), Y4
	VCVTDQ2PS    Y0, Y0
	VCVTDQ2PS    Y2, Y2
	VCVTDQ2PS    Y3, Y3
	VCVTDQ2PS    Y4, Y4
	VMULPS       Y1, Y0, Y0
	VMULPS       Y1, Y2, Y2
	VMULPS       Y1, Y3, Y3
	VMULPS       Y1, Y4, Y4
	VMOVUPS      Y0, (DI)
	VMOVUPS      Y2, 32(DI)
	VMOVUPS      Y3, 64(DI)
	VMOVUPS      Y4, 96(DI)
	ADDQ         $32, R10
	ADDQ         $4, R12
	ADDQ         $128, DI
	ADDQ         $32, AX
	CMPQ         AX, BX
	JL           q32loop
	ADDQ         R8, SI
	ADDQ         R11, DX
	DECQ         R9
	JMP          q32tok

qtok:
	TESTQ R9, R9
	JZ    qdone
	MOVQ  SI, R10 // this token's elements
	MOVQ  DX, R12 // this token's current scale
	XORQ  AX, AX  // element index
	XORQ  R13, R13 // index within the group
	VBROADCASTSS (R12), Y1

qloop:
	CMPQ R13, CX
	JL   qsame
	ADDQ $4, R12
	VBROADCASTSS (R12), Y1
	XORQ R13, R13

qsame:
	VPMOVSXBD (R10), Y0
	VCVTDQ2PS Y0, Y0
	VMULPS    Y1, Y0, Y0
	VMOVUPS   Y0, (DI)
	ADDQ      $8, R10
	ADDQ      $32, DI
	ADDQ      $8, AX
	ADDQ      $8, R13
	CMPQ      AX, BX
	JL        qloop
	ADDQ      R8, SI
	ADDQ      R11, DX
	DECQ      R9
	JMP       qtok

qdone:
	VZEROUPPER
	RET

// func deqBF16TileAVX512(dst *float32, src *byte, d, stride, n int)
// deqBF16TileAVX with 16 elements a step; d a positive multiple of 16.
TEXT ·deqBF16TileAVX512(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ d+16(FP), BX
	MOVQ stride+24(FP), R8
	MOVQ n+32(FP), R9
	SHLQ $1, R8

zbtok:
	TESTQ R9, R9
	JZ    zbdone
	MOVQ  SI, R10
	XORQ  AX, AX

zbloop:
	VPMOVZXWD (R10), Z0
	VPSLLD    $16, Z0, Z0
	VMOVUPS   Z0, (DI)
	ADDQ      $32, R10
	ADDQ      $64, DI
	ADDQ      $16, AX
	CMPQ      AX, BX
	JL        zbloop
	ADDQ      R8, SI
	DECQ      R9
	JMP       zbtok

zbdone:
	VZEROUPPER
	RET

// func deqQ8TileAVX512(dst *float32, src *byte, sc *float32, d, gs, stride, scStride, n int)
// deqQ8TileAVX with 16 elements a step; d and gs positive multiples of 16.
TEXT ·deqQ8TileAVX512(SB), NOSPLIT, $0-64
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ sc+16(FP), DX
	MOVQ d+24(FP), BX
	MOVQ gs+32(FP), CX
	MOVQ stride+40(FP), R8
	MOVQ scStride+48(FP), R11
	MOVQ n+56(FP), R9
	SHLQ $2, R11

zqtok:
	TESTQ R9, R9
	JZ    zqdone
	MOVQ  SI, R10
	MOVQ  DX, R12
	XORQ  AX, AX
	XORQ  R13, R13
	VBROADCASTSS (R12), Z1

zqloop:
	CMPQ R13, CX
	JL   zqsame
	ADDQ $4, R12
	VBROADCASTSS (R12), Z1
	XORQ R13, R13

zqsame:
	VPMOVSXBD (R10), Z0
	VCVTDQ2PS Z0, Z0
	VMULPS    Z1, Z0, Z0
	VMOVUPS   Z0, (DI)
	ADDQ      $16, R10
	ADDQ      $64, DI
	ADDQ      $16, AX
	ADDQ      $16, R13
	CMPQ      AX, BX
	JL        zqloop
	ADDQ      R8, SI
	ADDQ      R11, DX
	DECQ      R9
	JMP       zqtok

zqdone:
	VZEROUPPER
	RET

DATA q4shifts<>+0(SB)/4, $0
DATA q4shifts<>+4(SB)/4, $4
DATA q4shifts<>+8(SB)/4, $8
DATA q4shifts<>+12(SB)/4, $12
DATA q4shifts<>+16(SB)/4, $16
DATA q4shifts<>+20(SB)/4, $20
DATA q4shifts<>+24(SB)/4, $24
DATA q4shifts<>+28(SB)/4, $28
GLOBL q4shifts<>(SB), RODATA|NOPTR, $32

// func deqQ4KAVX(dst *float32, src *byte, step, lo *float32, d, rowBytes, n int)
// dst[t][i] = code(t, i)·step[i] + lo[i] for t < n, i < d (a positive multiple of 8), code
// (t, i) the nibble i of the row at src + t·rowBytes (low nibble first).
TEXT ·deqQ4KAVX(SB), NOSPLIT, $0-56
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ step+16(FP), DX
	MOVQ lo+24(FP), CX
	MOVQ d+32(FP), BX
	MOVQ rowBytes+40(FP), R8
	MOVQ n+48(FP), R9
	VMOVDQU q4shifts<>(SB), Y14
	VPCMPEQD Y13, Y13, Y13
	VPSRLD   $28, Y13, Y13 // 15 in every lane

k4tok:
	TESTQ R9, R9
	JZ    k4done
	MOVQ  SI, R10
	XORQ  AX, AX

k4loop:
	VPBROADCASTD (R10), Y0
	VPSRLVD      Y14, Y0, Y0
	VPAND        Y13, Y0, Y0
	VCVTDQ2PS    Y0, Y0
	VMOVUPS      (DX)(AX*4), Y1
	VFMADD213PS  (CX)(AX*4), Y1, Y0
	VMOVUPS      Y0, (DI)
	ADDQ         $4, R10
	ADDQ         $32, DI
	ADDQ         $8, AX
	CMPQ         AX, BX
	JL           k4loop
	ADDQ         R8, SI
	DECQ         R9
	JMP          k4tok

k4done:
	VZEROUPPER
	RET

// func deqQ4VAVX(dst *float32, src *byte, sc *float32, d, gs, rowBytes, scStride, ng, n int)
// dst[t][i] = code(t, i)·sc[t·scStride + i/gs] + sc[t·scStride + ng + i/gs] for t < n,
// i < d; d and gs positive multiples of 8.
TEXT ·deqQ4VAVX(SB), NOSPLIT, $0-72
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ sc+16(FP), DX
	MOVQ d+24(FP), BX
	MOVQ gs+32(FP), CX
	MOVQ rowBytes+40(FP), R8
	MOVQ scStride+48(FP), R11
	MOVQ ng+56(FP), R14
	MOVQ n+64(FP), R9
	SHLQ $2, R11 // scale stride in bytes
	SHLQ $2, R14 // offset of the minima in bytes
	VMOVDQU q4shifts<>(SB), Y14
	VPCMPEQD Y13, Y13, Y13
	VPSRLD   $28, Y13, Y13

v4tok:
	TESTQ R9, R9
	JZ    v4done
	MOVQ  SI, R10
	MOVQ  DX, R12
	XORQ  AX, AX
	XORQ  R13, R13
	VBROADCASTSS (R12), Y1
	VBROADCASTSS (R12)(R14*1), Y2

v4loop:
	CMPQ R13, CX
	JL   v4same
	ADDQ $4, R12
	VBROADCASTSS (R12), Y1
	VBROADCASTSS (R12)(R14*1), Y2
	XORQ R13, R13

v4same:
	VPBROADCASTD (R10), Y0
	VPSRLVD      Y14, Y0, Y0
	VPAND        Y13, Y0, Y0
	VCVTDQ2PS    Y0, Y0
	VFMADD213PS  Y2, Y1, Y0
	VMOVUPS      Y0, (DI)
	ADDQ         $4, R10
	ADDQ         $32, DI
	ADDQ         $8, AX
	ADDQ         $8, R13
	CMPQ         AX, BX
	JL           v4loop
	ADDQ         R8, SI
	ADDQ         R11, DX
	DECQ         R9
	JMP          v4tok

v4done:
	VZEROUPPER
	RET
