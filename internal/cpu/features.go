package cpu

// AVX2FMA reports whether this CPU and OS run the AVX2 + FMA assembly routes (always false
// with the purego build tag or off amd64).
var AVX2FMA = avx2fma

// AVX512 reports whether this CPU and OS also run the AVX-512 (F, DQ, VL) routes (always false
// with the purego build tag or off amd64).
var AVX512 = avx512
