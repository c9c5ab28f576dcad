//go:build amd64 && !purego

#include "textflag.h"

// Decode kernels: the query heads of one KV head in the 8 lanes of a score row. h8 = 0 skips
// the eighth head's products (seven heads, as Qwen2.5 has). The dot kernels also prefetch
// each key's value row (v, same stride), which P·V then reads column by column.

// REDUCE8 sums each of Y0..Y7 across its lanes into lane h of Y1 (clobbers Y0, Y2, Y4, Y6):
// every sum is ((l0+l1)+(l2+l3)) + ((l4+l5)+(l6+l7)).
#define REDUCE8 \
	VHADDPS Y1, Y0, Y0 \
	VHADDPS Y3, Y2, Y2 \
	VHADDPS Y5, Y4, Y4 \
	VHADDPS Y7, Y6, Y6 \
	VHADDPS Y2, Y0, Y0 \
	VHADDPS Y6, Y4, Y4 \
	VPERM2F128 $0x20, Y4, Y0, Y1 \
	VPERM2F128 $0x31, Y4, Y0, Y2 \
	VADDPS Y2, Y1, Y1

#define ZERO8 \
	VXORPS Y0, Y0, Y0 \
	VXORPS Y1, Y1, Y1 \
	VXORPS Y2, Y2, Y2 \
	VXORPS Y3, Y3, Y3 \
	VXORPS Y4, Y4, Y4 \
	VXORPS Y5, Y5, Y5 \
	VXORPS Y6, Y6, Y6 \
	VXORPS Y7, Y7, Y7

// func qkHeadsAVX(s, qc, k, v *float32, d, stride, n, h8 int, scale float32, mx *float32)
// s[i][h] = scale·Σ_c qc[c][h]·k_i[c] for i < n (n > 0), key i at k + i·stride floats, d a
// positive multiple of 8; mx[h] = max(mx[h], s[i][h]).
TEXT ·qkHeadsAVX(SB), NOSPLIT, $0-80
	MOVQ s+0(FP), DI
	MOVQ qc+8(FP), SI
	MOVQ k+16(FP), DX
	MOVQ v+24(FP), R13
	SUBQ DX, R13 // value row - key row, bytes
	MOVQ d+32(FP), BX
	MOVQ stride+40(FP), R8
	MOVQ n+48(FP), R9
	MOVQ h8+56(FP), R10
	VBROADCASTSS scale+64(FP), Y15
	MOVQ mx+72(FP), R11
	VMOVUPS (R11), Y14
	SHLQ $2, BX
	SHLQ $2, R8

qhkey:
	ZERO8
	MOVQ SI, R12
	XORQ AX, AX
	LEAQ (DX)(R13*1), R14

qhchunk:
	PREFETCHT0 (R14)(AX*1)
	VMOVUPS (DX)(AX*1), Y8
	VFMADD231PS 0(R12), Y8, Y0
	VFMADD231PS 32(R12), Y8, Y1
	VFMADD231PS 64(R12), Y8, Y2
	VFMADD231PS 96(R12), Y8, Y3
	VFMADD231PS 128(R12), Y8, Y4
	VFMADD231PS 160(R12), Y8, Y5
	VFMADD231PS 192(R12), Y8, Y6
	TESTQ R10, R10
	JZ    qhskip
	VFMADD231PS 224(R12), Y8, Y7

qhskip:
	ADDQ $256, R12
	ADDQ $32, AX
	CMPQ AX, BX
	JL   qhchunk
	REDUCE8
	VMULPS  Y15, Y1, Y1
	VMOVUPS Y1, (DI)
	VMAXPS  Y1, Y14, Y14
	ADDQ    $32, DI
	ADDQ    R8, DX
	DECQ    R9
	JNZ     qhkey
	VMOVUPS Y14, (R11)
	VZEROUPPER
	RET

// func qkHeadsQ8AVX(s, qc *float32, k, v *byte, ks *float32, d, stride, scStride, n, h8 int, scale float32, mx *float32)
// qkHeadsAVX over int8 keys: element e of key i is k[i·stride+e] · ks[i·scStride + e/32];
// d a positive multiple of 32. Each group's 32 elements are widened and scaled in registers.
TEXT ·qkHeadsQ8AVX(SB), NOSPLIT, $0-96
	MOVQ s+0(FP), DI
	MOVQ qc+8(FP), SI
	MOVQ k+16(FP), DX
	MOVQ v+24(FP), R11
	SUBQ DX, R11 // value row - key row, bytes
	MOVQ ks+32(FP), R14
	MOVQ d+40(FP), BX
	MOVQ stride+48(FP), R8
	MOVQ scStride+56(FP), AX
	MOVQ n+64(FP), R9
	MOVQ h8+72(FP), R10
	VBROADCASTSS scale+80(FP), Y15
	MOVQ mx+88(FP), R12
	VMOVUPS (R12), Y14
	SHRQ $5, BX // groups
	SHLQ $2, AX // scale stride in bytes

qqkey:
	ZERO8
	MOVQ SI, R12
	MOVQ DX, R13
	MOVQ R14, R15
	MOVQ BX, CX

qqgroup:
	PREFETCHT0 (R13)(R11*1)
	VBROADCASTSS (R15), Y9
	VPMOVSXBD 0(R13), Y8
	VCVTDQ2PS Y8, Y8
	VMULPS    Y9, Y8, Y8
	VFMADD231PS 0(R12), Y8, Y0
	VFMADD231PS 32(R12), Y8, Y1
	VFMADD231PS 64(R12), Y8, Y2
	VFMADD231PS 96(R12), Y8, Y3
	VFMADD231PS 128(R12), Y8, Y4
	VFMADD231PS 160(R12), Y8, Y5
	VFMADD231PS 192(R12), Y8, Y6
	TESTQ R10, R10
	JZ    qqskip0
	VFMADD231PS 224(R12), Y8, Y7

qqskip0:
	ADDQ $256, R12
	VPMOVSXBD 8(R13), Y8
	VCVTDQ2PS Y8, Y8
	VMULPS    Y9, Y8, Y8
	VFMADD231PS 0(R12), Y8, Y0
	VFMADD231PS 32(R12), Y8, Y1
	VFMADD231PS 64(R12), Y8, Y2
	VFMADD231PS 96(R12), Y8, Y3
	VFMADD231PS 128(R12), Y8, Y4
	VFMADD231PS 160(R12), Y8, Y5
	VFMADD231PS 192(R12), Y8, Y6
	TESTQ R10, R10
	JZ    qqskip1
	VFMADD231PS 224(R12), Y8, Y7

qqskip1:
	ADDQ $256, R12
	VPMOVSXBD 16(R13), Y8
	VCVTDQ2PS Y8, Y8
	VMULPS    Y9, Y8, Y8
	VFMADD231PS 0(R12), Y8, Y0
	VFMADD231PS 32(R12), Y8, Y1
	VFMADD231PS 64(R12), Y8, Y2
	VFMADD231PS 96(R12), Y8, Y3
	VFMADD231PS 128(R12), Y8, Y4
	VFMADD231PS 160(R12), Y8, Y5
	VFMADD231PS 192(R12), Y8, Y6
	TESTQ R10, R10
	JZ    qqskip2
	VFMADD231PS 224(R12), Y8, Y7

qqskip2:
	ADDQ $256, R12
	VPMOVSXBD 24(R13), Y8
	VCVTDQ2PS Y8, Y8
	VMULPS    Y9, Y8, Y8
	VFMADD231PS 0(R12), Y8, Y0
	VFMADD231PS 32(R12), Y8, Y1
	VFMADD231PS 64(R12), Y8, Y2
	VFMADD231PS 96(R12), Y8, Y3
	VFMADD231PS 128(R12), Y8, Y4
	VFMADD231PS 160(R12), Y8, Y5
	VFMADD231PS 192(R12), Y8, Y6
	TESTQ R10, R10
	JZ    qqskip3
	VFMADD231PS 224(R12), Y8, Y7

qqskip3:
	ADDQ $256, R12
	ADDQ $32, R13
	ADDQ $4, R15
	DECQ CX
	JNZ  qqgroup
	REDUCE8
	VMULPS  Y15, Y1, Y1
	VMOVUPS Y1, (DI)
	VMAXPS  Y1, Y14, Y14
	ADDQ    $32, DI
	ADDQ    R8, DX
	ADDQ    AX, R14
	DECQ    R9
	JNZ     qqkey
	MOVQ    mx+88(FP), R12
	VMOVUPS Y14, (R12)
	VZEROUPPER
	RET

// expTileAVX's constants, one float each (broadcast where used).
DATA decexp<>+0(SB)/4, $0xc2aeac4f // lo
DATA decexp<>+4(SB)/4, $0x3fb8aa3b // log2e
DATA decexp<>+8(SB)/4, $0x3f000000 // half
DATA decexp<>+12(SB)/4, $0x3f318000 // c1
DATA decexp<>+16(SB)/4, $0xb95e8083 // c2
DATA decexp<>+20(SB)/4, $0x39506967 // p0
DATA decexp<>+24(SB)/4, $0x3ab743ce // p1
DATA decexp<>+28(SB)/4, $0x3c088908 // p2
DATA decexp<>+32(SB)/4, $0x3d2aa9c1 // p3
DATA decexp<>+36(SB)/4, $0x3e2aaaaa // p4
DATA decexp<>+40(SB)/4, $0x3f000000 // p5
DATA decexp<>+44(SB)/4, $0x3f800000 // one
DATA decexp<>+48(SB)/4, $0x0000007f // i127
GLOBL decexp<>(SB), RODATA|NOPTR, $52

// func expHeadsAVX(s *float32, n int, m, sum *float32)
// s[i][h] = exp(s[i][h] - m[h]) for i < n (n > 0), sum[h] = Σ_i s[i][h]; expTileAVX's
// polynomial, arguments below -87.3 (and -Inf) give 0.
TEXT ·expHeadsAVX(SB), NOSPLIT, $0-32
	MOVQ s+0(FP), DI
	MOVQ n+8(FP), CX
	MOVQ m+16(FP), R8
	MOVQ sum+24(FP), R9
	VMOVUPS (R8), Y14
	VBROADCASTSS decexp<>+4(SB), Y15
	VBROADCASTSS decexp<>+0(SB), Y12
	VBROADCASTSS decexp<>+8(SB), Y11
	VBROADCASTSS decexp<>+12(SB), Y10
	VBROADCASTSS decexp<>+16(SB), Y9
	VBROADCASTSS decexp<>+44(SB), Y8
	VBROADCASTSS decexp<>+48(SB), Y7
	VXORPS Y13, Y13, Y13

ehloop:
	VMOVUPS (DI), Y0
	VSUBPS  Y14, Y0, Y0
	VCMPPS  $13, Y12, Y0, Y4 // keep = x >= lo
	VMAXPS  Y12, Y0, Y0
	VMOVAPS Y11, Y1
	VFMADD231PS Y15, Y0, Y1 // x·log2e + 0.5
	VROUNDPS $1, Y1, Y1     // k = floor
	VFNMADD231PS Y10, Y1, Y0
	VFNMADD231PS Y9, Y1, Y0 // r = x - k·ln2
	VMULPS  Y0, Y0, Y2
	VBROADCASTSS decexp<>+20(SB), Y3
	VBROADCASTSS decexp<>+24(SB), Y5
	VFMADD213PS Y5, Y0, Y3
	VBROADCASTSS decexp<>+28(SB), Y6
	VFMADD213PS Y6, Y0, Y3
	VBROADCASTSS decexp<>+32(SB), Y5
	VFMADD213PS Y5, Y0, Y3
	VBROADCASTSS decexp<>+36(SB), Y6
	VFMADD213PS Y6, Y0, Y3
	VBROADCASTSS decexp<>+40(SB), Y5
	VFMADD213PS Y5, Y0, Y3
	VFMADD213PS Y0, Y2, Y3  // p·r² + r
	VADDPS  Y8, Y3, Y3
	VCVTTPS2DQ Y1, Y1
	VPADDD  Y7, Y1, Y1
	VPSLLD  $23, Y1, Y1     // 2^k
	VMULPS  Y1, Y3, Y3
	VANDPS  Y4, Y3, Y3
	VMOVUPS Y3, (DI)
	VADDPS  Y3, Y13, Y13
	ADDQ    $32, DI
	DECQ    CX
	JNZ     ehloop
	VMOVUPS Y13, (R9)
	VZEROUPPER
	RET

// func pvHeadsAVX(o, p, v *float32, d, stride, n, h8 int)
// o[h][:d] += Σ_i p[i][h]·v_i for i < n (n > 0), h < 7 (and h = 7 when h8 != 0), value i at
// v + i·stride floats, o rows of d floats, d a positive multiple of 8. Eight output registers
// (one per head) hold 8 columns over all keys.
TEXT ·pvHeadsAVX(SB), NOSPLIT, $0-56
	MOVQ o+0(FP), DI
	MOVQ p+8(FP), SI
	MOVQ v+16(FP), DX
	MOVQ d+24(FP), BX
	MOVQ stride+32(FP), R8
	MOVQ n+40(FP), R9
	MOVQ h8+48(FP), R10
	SHLQ $2, R8
	SHLQ $2, BX // o row bytes
	SHLQ $5, R9
	ADDQ SI, R9 // end of p
	XORQ AX, AX // column offset in o, bytes

pfchunk:
	LEAQ (DI)(AX*1), R11
	LEAQ (R11)(BX*4), R12
	LEAQ (R11)(BX*2), R13
	ADDQ BX, R13
	LEAQ (R12)(BX*2), R14
	ADDQ BX, R14
	VMOVUPS (R11), Y0
	VMOVUPS (R11)(BX*1), Y1
	VMOVUPS (R11)(BX*2), Y2
	VMOVUPS (R13), Y3
	VMOVUPS (R12), Y4
	VMOVUPS (R12)(BX*1), Y5
	VMOVUPS (R12)(BX*2), Y6
	TESTQ R10, R10
	JZ    pfld7
	VMOVUPS (R14), Y7

pfld7:
	LEAQ (DX)(AX*1), R15
	MOVQ SI, CX

pfkey:
	VMOVUPS (R15), Y8
	VBROADCASTSS 0(CX), Y9
	VFMADD231PS Y9, Y8, Y0
	VBROADCASTSS 4(CX), Y10
	VFMADD231PS Y10, Y8, Y1
	VBROADCASTSS 8(CX), Y11
	VFMADD231PS Y11, Y8, Y2
	VBROADCASTSS 12(CX), Y12
	VFMADD231PS Y12, Y8, Y3
	VBROADCASTSS 16(CX), Y9
	VFMADD231PS Y9, Y8, Y4
	VBROADCASTSS 20(CX), Y10
	VFMADD231PS Y10, Y8, Y5
	VBROADCASTSS 24(CX), Y11
	VFMADD231PS Y11, Y8, Y6
	TESTQ R10, R10
	JZ    pfskip
	VBROADCASTSS 28(CX), Y13
	VFMADD231PS Y13, Y8, Y7

pfskip:
	ADDQ R8, R15
	ADDQ $32, CX
	CMPQ CX, R9
	JL   pfkey
	LEAQ (DI)(AX*1), R11
	LEAQ (R11)(BX*4), R12
	LEAQ (R11)(BX*2), R13
	ADDQ BX, R13
	LEAQ (R12)(BX*2), R14
	ADDQ BX, R14
	VMOVUPS Y0, (R11)
	VMOVUPS Y1, (R11)(BX*1)
	VMOVUPS Y2, (R11)(BX*2)
	VMOVUPS Y3, (R13)
	VMOVUPS Y4, (R12)
	VMOVUPS Y5, (R12)(BX*1)
	VMOVUPS Y6, (R12)(BX*2)
	TESTQ R10, R10
	JZ    pfst7
	VMOVUPS Y7, (R14)

pfst7:
	ADDQ $32, AX
	CMPQ AX, BX
	JL   pfchunk
	VZEROUPPER
	RET

// func pvHeadsQ8AVX(o, p *float32, v *byte, vs *float32, d, stride, scStride, n, h8 int)
// pvHeadsAVX over int8 values: element e of value i is v[i·stride+e] · vs[i·scStride + e/32];
// d a positive multiple of 32.
TEXT ·pvHeadsQ8AVX(SB), NOSPLIT, $0-72
	MOVQ o+0(FP), DI
	MOVQ p+8(FP), SI
	MOVQ v+16(FP), DX
	MOVQ d+32(FP), BX
	MOVQ stride+40(FP), R8
	MOVQ n+56(FP), R9
	MOVQ h8+64(FP), R10
	SHLQ $2, BX // o row bytes
	SHLQ $5, R9
	ADDQ SI, R9 // end of p
	XORQ AX, AX // column offset in o, bytes

pqchunk:
	LEAQ (DI)(AX*1), R11
	LEAQ (R11)(BX*4), R12
	LEAQ (R11)(BX*2), R13
	ADDQ BX, R13
	LEAQ (R12)(BX*2), R14
	ADDQ BX, R14
	VMOVUPS (R11), Y0
	VMOVUPS (R11)(BX*1), Y1
	VMOVUPS (R11)(BX*2), Y2
	VMOVUPS (R13), Y3
	VMOVUPS (R12), Y4
	VMOVUPS (R12)(BX*1), Y5
	VMOVUPS (R12)(BX*2), Y6
	TESTQ R10, R10
	JZ    pqld7
	VMOVUPS (R14), Y7

pqld7:
	MOVQ AX, R15
	SHRQ $2, R15
	ADDQ DX, R15 // v + column
	MOVQ AX, R11
	SHRQ $7, R11
	SHLQ $2, R11
	ADDQ vs+24(FP), R11 // this column's group scale of value 0
	MOVQ scStride+48(FP), R12
	SHLQ $2, R12
	MOVQ SI, CX

pqkey:
	VPMOVSXBD (R15), Y8
	VCVTDQ2PS Y8, Y8
	VBROADCASTSS (R11), Y9
	VMULPS    Y9, Y8, Y8
	VBROADCASTSS 0(CX), Y9
	VFMADD231PS Y9, Y8, Y0
	VBROADCASTSS 4(CX), Y10
	VFMADD231PS Y10, Y8, Y1
	VBROADCASTSS 8(CX), Y11
	VFMADD231PS Y11, Y8, Y2
	VBROADCASTSS 12(CX), Y12
	VFMADD231PS Y12, Y8, Y3
	VBROADCASTSS 16(CX), Y9
	VFMADD231PS Y9, Y8, Y4
	VBROADCASTSS 20(CX), Y10
	VFMADD231PS Y10, Y8, Y5
	VBROADCASTSS 24(CX), Y11
	VFMADD231PS Y11, Y8, Y6
	TESTQ R10, R10
	JZ    pqskip
	VBROADCASTSS 28(CX), Y13
	VFMADD231PS Y13, Y8, Y7

pqskip:
	ADDQ R8, R15
	ADDQ R12, R11
	ADDQ $32, CX
	CMPQ CX, R9
	JL   pqkey
	LEAQ (DI)(AX*1), R11
	LEAQ (R11)(BX*4), R12
	LEAQ (R11)(BX*2), R13
	ADDQ BX, R13
	LEAQ (R12)(BX*2), R14
	ADDQ BX, R14
	VMOVUPS Y0, (R11)
	VMOVUPS Y1, (R11)(BX*1)
	VMOVUPS Y2, (R11)(BX*2)
	VMOVUPS Y3, (R13)
	VMOVUPS Y4, (R12)
	VMOVUPS Y5, (R12)(BX*1)
	VMOVUPS Y6, (R12)(BX*2)
	TESTQ R10, R10
	JZ    pqst7
	VMOVUPS Y7, (R14)

pqst7:
	ADDQ $32, AX
	CMPQ AX, BX
	JL   pqchunk
	VZEROUPPER
	RET

// func pvHeads2AVX(o, p, v *float32, d, stride, n int)
// o[h][:d] += Σ_i p[i][h]·v_i for i < n (n > 0), h < 7, value i at v + i·stride floats, d a
// positive multiple of 16: fourteen output registers (seven heads × 16 columns) over all keys,
// each broadcast probability used for two columns.
TEXT ·pvHeads2AVX(SB), NOSPLIT, $0-48
	MOVQ o+0(FP), DI
	MOVQ p+8(FP), SI
	MOVQ v+16(FP), DX
	MOVQ d+24(FP), BX
	MOVQ stride+32(FP), R8
	MOVQ n+40(FP), R9
	SHLQ $2, R8
	SHLQ $2, BX // o row bytes
	SHLQ $5, R9
	ADDQ SI, R9 // end of p
	XORQ AX, AX // column offset in o, bytes

p2chunk:
	LEAQ (DI)(AX*1), R11
	LEAQ (R11)(BX*4), R12
	LEAQ (R11)(BX*2), R13
	ADDQ BX, R13
	LEAQ (R12)(BX*2), R14
	ADDQ BX, R14
	VMOVUPS (R11), Y0
	VMOVUPS 32(R11), Y7
	VMOVUPS (R11)(BX*1), Y1
	VMOVUPS 32(R11)(BX*1), Y8
	VMOVUPS (R11)(BX*2), Y2
	VMOVUPS 32(R11)(BX*2), Y9
	VMOVUPS (R13), Y3
	VMOVUPS 32(R13), Y10
	VMOVUPS (R12), Y4
	VMOVUPS 32(R12), Y11
	VMOVUPS (R12)(BX*1), Y5
	VMOVUPS 32(R12)(BX*1), Y12
	VMOVUPS (R12)(BX*2), Y6
	VMOVUPS 32(R12)(BX*2), Y13
	LEAQ (DX)(AX*1), R15
	MOVQ SI, CX

p2key:
	VBROADCASTSS 0(CX), Y14
	VFMADD231PS (R15), Y14, Y0
	VFMADD231PS 32(R15), Y14, Y7
	VBROADCASTSS 4(CX), Y15
	VFMADD231PS (R15), Y15, Y1
	VFMADD231PS 32(R15), Y15, Y8
	VBROADCASTSS 8(CX), Y14
	VFMADD231PS (R15), Y14, Y2
	VFMADD231PS 32(R15), Y14, Y9
	VBROADCASTSS 12(CX), Y15
	VFMADD231PS (R15), Y15, Y3
	VFMADD231PS 32(R15), Y15, Y10
	VBROADCASTSS 16(CX), Y14
	VFMADD231PS (R15), Y14, Y4
	VFMADD231PS 32(R15), Y14, Y11
	VBROADCASTSS 20(CX), Y15
	VFMADD231PS (R15), Y15, Y5
	VFMADD231PS 32(R15), Y15, Y12
	VBROADCASTSS 24(CX), Y14
	VFMADD231PS (R15), Y14, Y6
	VFMADD231PS 32(R15), Y14, Y13
	ADDQ R8, R15
	ADDQ $32, CX
	CMPQ CX, R9
	JL   p2key
	LEAQ (DI)(AX*1), R11
	LEAQ (R11)(BX*4), R12
	LEAQ (R11)(BX*2), R13
	ADDQ BX, R13
	LEAQ (R12)(BX*2), R14
	ADDQ BX, R14
	VMOVUPS Y0, (R11)
	VMOVUPS Y7, 32(R11)
	VMOVUPS Y1, (R11)(BX*1)
	VMOVUPS Y8, 32(R11)(BX*1)
	VMOVUPS Y2, (R11)(BX*2)
	VMOVUPS Y9, 32(R11)(BX*2)
	VMOVUPS Y3, (R13)
	VMOVUPS Y10, 32(R13)
	VMOVUPS Y4, (R12)
	VMOVUPS Y11, 32(R12)
	VMOVUPS Y5, (R12)(BX*1)
	VMOVUPS Y12, 32(R12)(BX*1)
	VMOVUPS Y6, (R12)(BX*2)
	VMOVUPS Y13, 32(R12)(BX*2)
	ADDQ $64, AX
	CMPQ AX, BX
	JL   p2chunk
	VZEROUPPER
	RET
