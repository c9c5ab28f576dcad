//go:build !amd64 || purego

package cpu

// No assembly route in this build: every kernel runs its pure-Go code.
const avx2fma, avx512, f16c, vnni = false, false, false, false
