// Package cpu is the one SIMD and threading layer of lighttransfer-go, shared by the attention
// kernels and the dense kernels (model/internal/kernels): one detection of the CPU features the
// assembly routes need, one purego convention, and one worker pool. It uses only the standard
// library, so the std-only leaf packages may import it.
//
// # Routes
//
// [AVX2FMA] and [AVX512] say which assembly routes this CPU runs. With the purego build tag,
// or off amd64, both are false and every kernel takes its pure-Go route; the assembly files
// themselves are then left out of the build (each carries `amd64 && !purego`). Kernel
// packages copy these values into variables of their own, which their tests flip to compare
// every route with the naive twins.
//
// # Pool
//
// [Pool] is a fixed set of worker goroutines that split a [Task] over chunks of work units.
// The caller works too; between calls the workers spin briefly, then park. Calls are
// serialized, and a call allocates nothing (the task is a pointer the caller owns).
package cpu
