package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestRowInvariance: on every route, for float32 and bf16 weights, each output of a product
// has the same bits whatever else is computed with it: MatMul of n tokens (any n, the token
// anywhere among them), MatVec of the token alone and MatVecs give a token's row the bits of
// MatVec on one thread, also when the weights start at another row (the row's place in a
// 4-row tile moves) and with 1, 2 or 3 threads (the split of rows over workers moves). The
// shapes have tail columns (not multiples of 8 or 16), several kc column blocks (2100; 1029
// and 1030 end in a block of fewer than 8 columns), row counts around the 4- and 8-row tiles,
// and are large enough that the parallel paths run.
func TestRowInvariance(t *testing.T) {
	shapes := [][2]int{{67, 1041}, {13, 2100}, {37, 33}, {5, 7}, {200, 2100}, {130, 896}, {29, 1029}, {16, 1030}}
	const nmax = 13
	pools := []*Pool{NewPool(1), NewPool(2), NewPool(3)}
	defer func() {
		for _, p := range pools {
			p.Close()
		}
	}()
	forEachRoute(t, func(t *testing.T) {
		for si, sh := range shapes {
			rows, cols := sh[0], sh[1]
			rng := rand.New(rand.NewPCG(uint64(si), 9))
			w, x := randVec(rng, rows*cols), randVec(rng, nmax*cols)
			wb, _ := toBF16(w)
			for _, bf := range []bool{false, true} {
				name := fmt.Sprintf("%dx%d/bf16=%v", rows, cols, bf)
				// mv and mm run the products on rows [a, rows) of the weights.
				mv := func(p *Pool, dst, x []float32, a int) {
					if bf {
						p.MatVecBF16(dst, wb[a*cols:], x, rows-a, cols)
					} else {
						p.MatVec(dst, w[a*cols:], x, rows-a, cols)
					}
				}
				mm := func(p *Pool, dst, x []float32, n, a int) {
					if bf {
						p.MatMulBF16(dst, x, wb[a*cols:], n, rows-a, cols)
					} else {
						p.MatMul(dst, x, w[a*cols:], n, rows-a, cols)
					}
				}
				ref := make([]float32, nmax*rows)
				for tk := 0; tk < nmax; tk++ {
					mv(pools[0], ref[tk*rows:(tk+1)*rows], x[tk*cols:(tk+1)*cols], 0)
				}
				check := func(what string, got []float32, tk, a int) {
					t.Helper()
					for r := range got {
						want := ref[tk*rows+a+r]
						if math.Float32bits(got[r]) != math.Float32bits(want) {
							t.Fatalf("%s %s: token %d row %d: %v (bits %08x), alone %v (bits %08x)",
								name, what, tk, a+r, got[r], math.Float32bits(got[r]), want, math.Float32bits(want))
						}
					}
				}
				dst := make([]float32, nmax*rows)
				for pi, p := range pools {
					for _, a := range []int{0, 3} {
						if a >= rows {
							continue
						}
						ra := rows - a
						for tk := 0; tk < nmax; tk += 4 {
							mv(p, dst[:ra], x[tk*cols:(tk+1)*cols], a)
							check(fmt.Sprintf("MatVec threads=%d from row %d", pi+1, a), dst[:ra], tk, a)
						}
						for _, n := range []int{1, 2, 4, 5, 13} {
							for _, o := range []int{0, nmax - n} {
								if o+n > nmax {
									continue
								}
								mm(p, dst[:n*ra], x[o*cols:(o+n)*cols], n, a)
								for tk := 0; tk < n; tk++ {
									check(fmt.Sprintf("MatMul n=%d threads=%d from row %d", n, pi+1, a), dst[tk*ra:(tk+1)*ra], o+tk, a)
								}
							}
						}
					}
					// MatVecs: the same product as the second of two, and the first of three.
					pr := Product{Dst: dst[:rows], Rows: rows}
					if bf {
						pr.WB = wb
					} else {
						pr.W = w
					}
					other := Product{Dst: make([]float32, 5), W: randVec(rng, 5*cols), Rows: 5}
					other2 := other
					other2.Dst = make([]float32, 5)
					tk := nmax - 1
					p.MatVecs(x[tk*cols:(tk+1)*cols], cols, [MaxProducts]Product{other, pr})
					check(fmt.Sprintf("MatVecs second threads=%d", pi+1), dst[:rows], tk, 0)
					p.MatVecs(x[tk*cols:(tk+1)*cols], cols, [MaxProducts]Product{pr, other, other2})
					check(fmt.Sprintf("MatVecs first threads=%d", pi+1), dst[:rows], tk, 0)
				}
			}
		}
	})
}
