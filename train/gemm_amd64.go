//go:build amd64 && !purego

package train

import "github.com/lighttransfer/lighttransfer-go/internal/cpu"

// useAVX2 selects the AVX2+FMA tile kernel (internal/cpu's detection); tests flip it to check
// the Go twin against it.
var useAVX2 = cpu.AVX2FMA

// tileAVX adds the gemmMR×gemmNR tile a·bp to c (add) or stores it there (!add): element (i, q) of a at a + 4·(i·rsA+q·csA),
// bp k rows of gemmNR floats, c rows of ldc floats; k ≥ 1.
//
//go:noescape
func tileAVX(k int, a *float32, rsA, csA int, bp, c *float32, ldc int, add bool)

// expAffineAVX sets dst[i] = e^t, t = min(a·src[i]+b, 88), 0 where t < −87.3, for i < n (a
// multiple of 8), and returns Σ dst.
//
//go:noescape
func expAffineAVX(dst, src *float32, n int, a, b float32) float32
