// Package kernels holds the dense CPU math of the forward pass: matrix-vector and
// matrix-matrix products against row-major weights (float32 or bf16), RMSNorm,
// SiLU gating and residual adds.
//
// Weights are row-major [rows][cols], the Hugging Face [out][in] layout, so every
// product is a set of dot products along cols. On amd64 with AVX2 and FMA the inner
// loops run in Go assembly generated with avo (see asm/); elsewhere, with the purego
// build tag, or when the CPU lacks those features, portable Go code computes the
// same products. Each route sums every output in one fixed order (the asm route in blocks of
// kc columns with one vector accumulator per output, the portable route in one chain), so
// within a route an output's bits depend on its weight row and token only: a token's row
// of MatMul equals MatVec of that token alone, whatever the number of tokens, the token's
// or the row's place in a tile and the split over workers. Routes differ from each other
// (and from a float64 sum) by rounding only.
//
// Quantized weights (Quant: 8 or 4 bits in blocks of 32 columns with float16 scales, and
// offsets for 4 bits) decode with MatVecQ, which quantizes x to int8 per block and sums
// integer products per block: VPMADDUBSW/VPMADDWD with AVX2 and F16C, one VPDPBUSD per
// block where the CPU has AVX-512 VNNI, plain Go otherwise. Prefill (MatMulQ) dequantizes
// 4-row weight tiles into the float32 tile kernels, the bf16 MatMul's scheme (the two are
// not bit-identical to each other: x is rounded to int8 in one only).
//
// Sizes are explicit; slices may be longer than needed and only their prefixes are
// used. Every kernel panics on bad sizes (programmer error) and allocates nothing.
package kernels
