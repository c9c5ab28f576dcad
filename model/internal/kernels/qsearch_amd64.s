//go:build amd64 && !purego

#include "textflag.h"

DATA q8lim<>+0(SB)/4, $127.0
DATA q8lim<>+4(SB)/4, $-127.0
GLOBL q8lim<>(SB), RODATA|NOPTR, $8

// Q8LEVELS takes one vector of 8 block values X for the candidate in Y12 (inverse scale) and
// Y13 (scale) to its levels T = clamp(roundeven(X·inv)) in Y8 and residuals R = X - T·s in Y9.
#define Q8LEVELS(X) \
	VMULPS Y12, X, Y8 \
	VROUNDPS $0, Y8, Y8 \
	VMINPS Y14, Y8, Y8 \
	VMAXPS Y15, Y8, Y8 \
	VMULPS Y13, Y8, Y9 \
	VSUBPS Y9, X, Y9

// Q8ACC adds R·R, R·T and T·T to the lane sums Y4, Y5 and Y6 (each product rounded apart).
#define Q8ACC \
	VMULPS Y9, Y9, Y10 \
	VADDPS Y10, Y4, Y4 \
	VMULPS Y8, Y9, Y10 \
	VADDPS Y10, Y5, Y5 \
	VMULPS Y8, Y8, Y10 \
	VADDPS Y10, Y6, Y6

// func search8(out *float32, x *float32, inv *float32, s *float32, n int)
// For each of the n candidates c it writes out[24c:24c+8] = lanes of Σ R², [+8] = Σ R·T,
// [+16] = Σ T², lane l summing block values l, l+8, l+16, l+24 in that order (see goSearch8).
TEXT ·search8(SB), NOSPLIT, $0-40
	MOVQ out+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ inv+16(FP), R8
	MOVQ s+24(FP), R9
	MOVQ n+32(FP), CX
	VMOVUPS 0(SI), Y0
	VMOVUPS 32(SI), Y1
	VMOVUPS 64(SI), Y2
	VMOVUPS 96(SI), Y3
	VBROADCASTSS q8lim<>+0(SB), Y14
	VBROADCASTSS q8lim<>+4(SB), Y15
	TESTQ CX, CX
	JLE done

loop:
	VBROADCASTSS (R8), Y12
	VBROADCASTSS (R9), Y13

	Q8LEVELS(Y0)
	VMULPS Y9, Y9, Y4
	VMULPS Y8, Y9, Y5
	VMULPS Y8, Y8, Y6

	Q8LEVELS(Y1)
	Q8ACC

	Q8LEVELS(Y2)
	Q8ACC

	Q8LEVELS(Y3)
	Q8ACC

	VMOVUPS Y4, 0(DI)
	VMOVUPS Y5, 32(DI)
	VMOVUPS Y6, 64(DI)
	ADDQ $96, DI
	ADDQ $4, R8
	ADDQ $4, R9
	DECQ CX
	JNZ loop

done:
	VZEROUPPER
	RET
