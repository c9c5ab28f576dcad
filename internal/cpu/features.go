package cpu

// AVX2FMA reports whether this CPU and OS run the AVX2 + FMA assembly routes (always false
// with the purego build tag or off amd64).
var AVX2FMA = avx2fma

// AVX512 reports whether this CPU and OS also run the AVX-512 (F, DQ, VL) routes (always false
// with the purego build tag or off amd64).
var AVX512 = avx512

// F16C reports whether this CPU also converts float16 with VCVTPH2PS, which the quantized
// weights' AVX2 kernels need for their scales (always false with purego or off amd64).
var F16C = f16c

// VNNI reports whether this CPU also runs AVX-512 VNNI (VPDPBUSD) with AVX-512 BW on top of
// the AVX512 routes and F16C: the quantized matrix-vector kernels' fastest route (always
// false with purego or off amd64).
var VNNI = vnni
