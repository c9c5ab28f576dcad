//go:build amd64 && !purego

#include "textflag.h"

// func tileAVX(k int, a *float32, rsA, csA int, bp, c *float32, ldc int, add bool)
// Accumulators Y0..Y7: row i in Y(2i) (columns 0..7) and Y(2i+1) (8..15).
TEXT ·tileAVX(SB), NOSPLIT, $0-57
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ rsA+16(FP), R8
	MOVQ csA+24(FP), R10
	MOVQ bp+32(FP), DI
	MOVQ c+40(FP), DX
	MOVQ ldc+48(FP), R11
	SHLQ $2, R8
	SHLQ $2, R10
	SHLQ $2, R11
	LEAQ (R8)(R8*2), R9
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	TESTQ CX, CX
	JLE  store

loop:
	VMOVUPS      (DI), Y8
	VMOVUPS      32(DI), Y9
	VBROADCASTSS (SI), Y10
	VFMADD231PS  Y8, Y10, Y0
	VFMADD231PS  Y9, Y10, Y1
	VBROADCASTSS (SI)(R8*1), Y11
	VFMADD231PS  Y8, Y11, Y2
	VFMADD231PS  Y9, Y11, Y3
	VBROADCASTSS (SI)(R8*2), Y12
	VFMADD231PS  Y8, Y12, Y4
	VFMADD231PS  Y9, Y12, Y5
	VBROADCASTSS (SI)(R9*1), Y13
	VFMADD231PS  Y8, Y13, Y6
	VFMADD231PS  Y9, Y13, Y7
	ADDQ         $64, DI
	ADDQ         R10, SI
	DECQ         CX
	JNZ          loop

store:
	MOVBLZX add+56(FP), AX
	TESTQ   AX, AX
	JZ      overwrite
	VADDPS  (DX), Y0, Y0
	VMOVUPS Y0, (DX)
	VADDPS  32(DX), Y1, Y1
	VMOVUPS Y1, 32(DX)
	ADDQ    R11, DX
	VADDPS  (DX), Y2, Y2
	VMOVUPS Y2, (DX)
	VADDPS  32(DX), Y3, Y3
	VMOVUPS Y3, 32(DX)
	ADDQ    R11, DX
	VADDPS  (DX), Y4, Y4
	VMOVUPS Y4, (DX)
	VADDPS  32(DX), Y5, Y5
	VMOVUPS Y5, 32(DX)
	ADDQ    R11, DX
	VADDPS  (DX), Y6, Y6
	VMOVUPS Y6, (DX)
	VADDPS  32(DX), Y7, Y7
	VMOVUPS Y7, 32(DX)
	VZEROUPPER
	RET

overwrite:
	VMOVUPS Y0, (DX)
	VMOVUPS Y1, 32(DX)
	ADDQ    R11, DX
	VMOVUPS Y2, (DX)
	VMOVUPS Y3, 32(DX)
	ADDQ    R11, DX
	VMOVUPS Y4, (DX)
	VMOVUPS Y5, 32(DX)
	ADDQ    R11, DX
	VMOVUPS Y6, (DX)
	VMOVUPS Y7, 32(DX)
	VZEROUPPER
	RET

// Constants of expAffineAVX: expk holds log2 e, 1.5·2²³, ln2 (high, low), −87.3, 88 (one
// float32 each); expv the polynomial's coefficients 1/720, 1/120, 1/24, 1/6, 1/2, 1 and the
// exponent bias 127 (int32), eight copies each.
DATA expk<>+0(SB)/4, $0x3fb8aa3b
DATA expk<>+4(SB)/4, $0x4b400000
DATA expk<>+8(SB)/4, $0x3f318000
DATA expk<>+12(SB)/4, $0xb95e8083
DATA expk<>+16(SB)/4, $0xc2ae999a
DATA expk<>+20(SB)/4, $0x42b00000
GLOBL expk<>(SB), RODATA|NOPTR, $24
DATA expv<>+0(SB)/4, $0x3ab60b61
DATA expv<>+4(SB)/4, $0x3ab60b61
DATA expv<>+8(SB)/4, $0x3ab60b61
DATA expv<>+12(SB)/4, $0x3ab60b61
DATA expv<>+16(SB)/4, $0x3ab60b61
DATA expv<>+20(SB)/4, $0x3ab60b61
DATA expv<>+24(SB)/4, $0x3ab60b61
DATA expv<>+28(SB)/4, $0x3ab60b61
DATA expv<>+32(SB)/4, $0x3c088889
DATA expv<>+36(SB)/4, $0x3c088889
DATA expv<>+40(SB)/4, $0x3c088889
DATA expv<>+44(SB)/4, $0x3c088889
DATA expv<>+48(SB)/4, $0x3c088889
DATA expv<>+52(SB)/4, $0x3c088889
DATA expv<>+56(SB)/4, $0x3c088889
DATA expv<>+60(SB)/4, $0x3c088889
DATA expv<>+64(SB)/4, $0x3d2aaaab
DATA expv<>+68(SB)/4, $0x3d2aaaab
DATA expv<>+72(SB)/4, $0x3d2aaaab
DATA expv<>+76(SB)/4, $0x3d2aaaab
DATA expv<>+80(SB)/4, $0x3d2aaaab
DATA expv<>+84(SB)/4, $0x3d2aaaab
DATA expv<>+88(SB)/4, $0x3d2aaaab
DATA expv<>+92(SB)/4, $0x3d2aaaab
DATA expv<>+96(SB)/4, $0x3e2aaaab
DATA expv<>+100(SB)/4, $0x3e2aaaab
DATA expv<>+104(SB)/4, $0x3e2aaaab
DATA expv<>+108(SB)/4, $0x3e2aaaab
DATA expv<>+112(SB)/4, $0x3e2aaaab
DATA expv<>+116(SB)/4, $0x3e2aaaab
DATA expv<>+120(SB)/4, $0x3e2aaaab
DATA expv<>+124(SB)/4, $0x3e2aaaab
DATA expv<>+128(SB)/4, $0x3f000000
DATA expv<>+132(SB)/4, $0x3f000000
DATA expv<>+136(SB)/4, $0x3f000000
DATA expv<>+140(SB)/4, $0x3f000000
DATA expv<>+144(SB)/4, $0x3f000000
DATA expv<>+148(SB)/4, $0x3f000000
DATA expv<>+152(SB)/4, $0x3f000000
DATA expv<>+156(SB)/4, $0x3f000000
DATA expv<>+160(SB)/4, $0x3f800000
DATA expv<>+164(SB)/4, $0x3f800000
DATA expv<>+168(SB)/4, $0x3f800000
DATA expv<>+172(SB)/4, $0x3f800000
DATA expv<>+176(SB)/4, $0x3f800000
DATA expv<>+180(SB)/4, $0x3f800000
DATA expv<>+184(SB)/4, $0x3f800000
DATA expv<>+188(SB)/4, $0x3f800000
DATA expv<>+192(SB)/4, $127
DATA expv<>+196(SB)/4, $127
DATA expv<>+200(SB)/4, $127
DATA expv<>+204(SB)/4, $127
DATA expv<>+208(SB)/4, $127
DATA expv<>+212(SB)/4, $127
DATA expv<>+216(SB)/4, $127
DATA expv<>+220(SB)/4, $127
GLOBL expv<>(SB), RODATA|NOPTR, $224

// func expAffineAVX(dst, src *float32, n int, a, b float32) float32
// dst[i] = e^t, t = min(a·src[i]+b, 88), 0 where t < −87.3, for n a multiple of 8; returns Σ dst.
TEXT ·expAffineAVX(SB), NOSPLIT, $0-36
	MOVQ         dst+0(FP), DI
	MOVQ         src+8(FP), SI
	MOVQ         n+16(FP), CX
	VBROADCASTSS a+24(FP), Y15
	VBROADCASTSS b+28(FP), Y14
	VBROADCASTSS expk<>+0(SB), Y13
	VBROADCASTSS expk<>+4(SB), Y12
	VBROADCASTSS expk<>+8(SB), Y11
	VBROADCASTSS expk<>+12(SB), Y10
	VBROADCASTSS expk<>+16(SB), Y9
	VBROADCASTSS expk<>+20(SB), Y8
	VXORPS       Y7, Y7, Y7
	SHRQ         $3, CX
	JZ           expdone

exploop:
	VMOVUPS      (SI), Y0
	VFMADD213PS  Y14, Y15, Y0 // t = a·x + b
	VMINPS       Y8, Y0, Y0   // t ≤ 88
	VCMPPS       $13, Y9, Y0, Y6 // keep: t ≥ −87.3
	VMOVAPS      Y0, Y1
	VFMADD213PS  Y12, Y13, Y1 // t·log2e + 1.5·2²³
	VSUBPS       Y12, Y1, Y1  // n = round(t·log2e)
	VFNMADD231PS Y11, Y1, Y0  // r = t − n·ln2hi
	VFNMADD231PS Y10, Y1, Y0  //     − n·ln2lo
	VMOVUPS      expv<>+0(SB), Y2
	VFMADD213PS  expv<>+32(SB), Y0, Y2
	VFMADD213PS  expv<>+64(SB), Y0, Y2
	VFMADD213PS  expv<>+96(SB), Y0, Y2
	VFMADD213PS  expv<>+128(SB), Y0, Y2
	VFMADD213PS  expv<>+160(SB), Y0, Y2
	VFMADD213PS  expv<>+160(SB), Y0, Y2 // e^r
	VCVTPS2DQ    Y1, Y3
	VPADDD       expv<>+192(SB), Y3, Y3
	VPSLLD       $23, Y3, Y3 // 2^n
	VMULPS       Y3, Y2, Y2
	VANDPS       Y6, Y2, Y2
	VMOVUPS      Y2, (DI)
	VADDPS       Y2, Y7, Y7
	ADDQ         $32, SI
	ADDQ         $32, DI
	DECQ         CX
	JNZ          exploop

expdone:
	VEXTRACTF128 $1, Y7, X0
	VADDPS       X0, X7, X7
	VHADDPS      X7, X7, X7
	VHADDPS      X7, X7, X7
	VMOVSS       X7, ret+32(FP)
	VZEROUPPER
	RET
