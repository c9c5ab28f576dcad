package attention

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
)

var benchLong = flag.Bool("attention.long", false, "run attention benchmarks above 4K context (16K prefill is ~120 GFLOP)")

// Qwen2.5-0.5B attention layout.
var benchParams = Params{Heads: 14, KVHeads: 2, HeadDim: 64}

var benchMasks = []struct {
	name string
	m    mask
}{{"full", mask{}}, {"streaming", mask{4, 1020}}}

func benchThreads() []int {
	if n := runtime.GOMAXPROCS(0); n > 1 {
		return []int{1, n}
	}
	return []int{1}
}

// visibleKeys counts the (query, key) pairs m lets through for a prefill of n.
func visibleKeys(m mask, n int) int64 {
	var c int64
	for q := 0; q < n; q++ {
		if m.window == 0 {
			c += int64(q + 1)
		} else {
			c += int64(min(q+1, m.window) + min(m.sink, max(0, q+1-m.window)))
		}
	}
	return c
}

// BenchmarkPrefill measures Prefill of n tokens (Qwen2.5-0.5B heads) with
// causal and streaming masks; gflop/s counts 4·HeadDim flops per visible
// (query head, key) pair. Sizes above 4K need -attention.long.
func BenchmarkPrefill(b *testing.B) {
	p := benchParams
	for _, bm := range benchMasks {
		for _, n := range []int{1 << 10, 4 << 10, 16 << 10} {
			for _, th := range benchThreads() {
				b.Run(fmt.Sprintf("%s/%dK/t%d", bm.name, n>>10, th), func(b *testing.B) {
					if n > 4<<10 && !*benchLong {
						b.Skip("needs -attention.long")
					}
					r := rand.New(rand.NewPCG(1, 2))
					q := randSlice(r, n*p.Heads*p.HeadDim, 1)
					k := randSlice(r, n*p.KVHeads*p.HeadDim, 1)
					v := randSlice(r, n*p.KVHeads*p.HeadDim, 1)
					out := make([]float32, len(q))
					lse := make([]float32, n*p.Heads)
					pp := p
					pp.Threads = th
					b.ResetTimer()
					for b.Loop() {
						Prefill(out, q, k, v, n, bm.m.sink, bm.m.window, pp, lse)
					}
					flops := float64(visibleKeys(bm.m, n)) * float64(p.Heads*p.HeadDim*4)
					b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "gflop/s")
				})
			}
		}
	}
}

// benchKV builds the cache a layer holds after ctx tokens: full layers as
// 256-token blocks, streaming layers as a sink segment plus a ring of Window
// slots whose oldest entry sits at slot ctx%Window.
func benchKV(r *rand.Rand, m mask, ctx int) (Segments, int) {
	w := benchParams.KVHeads * benchParams.HeadDim
	mk := func(pos []int32) Segment {
		return Segment{K: randSlice(r, len(pos)*w, 1), V: randSlice(r, len(pos)*w, 1), Pos: pos}
	}
	var kv Segments
	if m.window == 0 {
		for s := 0; s < ctx; s += 256 {
			pos := make([]int32, min(256, ctx-s))
			for i := range pos {
				pos[i] = int32(s + i)
			}
			kv = append(kv, mk(pos))
		}
		return kv, ctx
	}
	sink := make([]int32, min(m.sink, ctx))
	for i := range sink {
		sink[i] = int32(i)
	}
	ringN := min(m.window, ctx-len(sink))
	ring := make([]int32, ringN)
	for i := 0; i < ringN; i++ {
		p := ctx - ringN + i // the last ringN positions
		ring[p%m.window] = int32(p)
	}
	kv = append(kv, mk(sink), mk(ring))
	return kv, len(sink) + ringN
}

// BenchmarkDecode measures one decode query at position ctx over the layer's cache, stored as
// f32, bf16 or q8; MB/s is the K, V and scale bytes read (so streaming stays flat, full grows).
// Compare with BenchmarkStreamRead, the machine's read bandwidth.
func BenchmarkDecode(b *testing.B) {
	p := benchParams
	for _, bm := range benchMasks {
		for _, ctx := range []int{1 << 10, 4 << 10, 16 << 10} {
			for _, th := range benchThreads() {
				for _, et := range []struct {
					name string
					elem int
				}{{"f32", ElemF32}, {"bf16", ElemBF16}, {"q8", ElemQ8}, {"q4", ElemQ4}} {
					b.Run(fmt.Sprintf("%s/%dK/t%d/%s", bm.name, ctx>>10, th, et.name), func(b *testing.B) {
						r := rand.New(rand.NewPCG(3, 4))
						segs, held := benchKV(r, bm.m, ctx)
						q := randSlice(r, p.Heads*p.HeadDim, 1)
						out := make([]float32, len(q))
						pp := p
						pp.Threads = th
						var v KV = segs
						bytes := int64(held) * int64(2*p.KVHeads*p.HeadDim*4)
						if et.elem != ElemF32 {
							// Every segment encoded (benchKV has no span segment: add an empty one;
							// a q4 segment's keys share scales over its tokens, so q4 segments are
							// cut to the 32-token blocks a Q4 cache layer closes).
							if et.elem == ElemQ4 {
								segs = splitBlocks(segs, 32)
							}
							qkv, _ := quantize(append(segs, Segment{}), et.elem, p.HeadDim)
							v = qkv
							bytes = 0
							for _, g := range qkv {
								bytes += int64(len(g.k) + len(g.v) + 4*(len(g.ks)+len(g.vs)))
							}
						}
						b.SetBytes(bytes)
						b.ResetTimer()
						for b.Loop() {
							Decode(out, q, int32(ctx), v, bm.m.sink, bm.m.window, pp)
						}
					})
				}
			}
		}
	}
}

// splitBlocks cuts every segment of kv into runs of at most n tokens.
func splitBlocks(kv Segments, n int) Segments {
	w := benchParams.KVHeads * benchParams.HeadDim
	var out Segments
	for _, s := range kv {
		for t := 0; t < len(s.Pos); t += n {
			e := min(t+n, len(s.Pos))
			out = append(out, Segment{K: s.K[t*w : e*w], V: s.V[t*w : e*w], Pos: s.Pos[t:e]})
		}
	}
	return out
}

// BenchmarkStreamRead is the read-bandwidth baseline of BenchmarkDecode: a maximum over 256 MiB
// (far beyond the caches), split evenly over t goroutines, with the AVX2 max kernel where the
// CPU has it (a pure read stream), else a Go loop.
func BenchmarkStreamRead(b *testing.B) {
	buf := make([]float32, 64<<20)
	for i := range buf {
		buf[i] = float32(i & 7)
	}
	for _, th := range benchThreads() {
		b.Run(fmt.Sprintf("t%d", th), func(b *testing.B) {
			b.SetBytes(int64(len(buf) * 4))
			res := make([]float32, th*16)
			for b.Loop() {
				var wg sync.WaitGroup
				n := len(buf) / th &^ 7
				for t := range th {
					wg.Add(1)
					go func() {
						defer wg.Done()
						x := buf[t*n : (t+1)*n]
						if useAVX2 {
							res[t*16] = maxAVX(&x[0], len(x))
							return
						}
						var m0, m1, m2, m3 float32
						for i := 0; i+4 <= len(x); i += 4 {
							m0, m1, m2, m3 = max(m0, x[i]), max(m1, x[i+1]), max(m2, x[i+2]), max(m3, x[i+3])
						}
						res[t*16] = max(m0, m1, m2, m3)
					}()
				}
				wg.Wait()
			}
		})
	}
}

// BenchmarkRope measures Apply on a 512-token chunk of Qwen2.5-0.5B queries.
func BenchmarkRope(b *testing.B) {
	rope := NewRope(testInvFreq(64, 1000000), 1, 32768)
	x := make([]float32, 512*14*64)
	pos := make([]int32, 512)
	for i := range pos {
		pos[i] = int32(1000 + i)
	}
	b.SetBytes(int64(len(x) * 4))
	for b.Loop() {
		rope.Apply(x, pos, 14, 64)
	}
}

// BenchmarkDequant decodes one 64-token key tile of a Qwen2.5-0.5B head (64 of 128 elements a
// token) on each route the CPU has, the portable Go twin included; MB/s counts float32 written.
func BenchmarkDequant(b *testing.B) {
	const n, d, stride = keyTile, 64, 128
	r := rand.New(rand.NewPCG(1, 1))
	x := randSlice(r, n*stride, 3)
	bb, _, _ := naiveEncode(ElemBF16, x, d)
	qb, sc, _ := naiveEncode(ElemQ8, x, d)
	gs, gph := q8Groups(d)
	dst := make([]float32, n*d)
	routes := []struct {
		name         string
		avx2, avx512 bool
		ok           bool
	}{{"portable", false, false, true}, {"avx2", true, false, useAVX2}, {"avx512", true, true, useAVX512}}
	saved, saved512 := useAVX2, useAVX512
	defer func() { useAVX2, useAVX512 = saved, saved512 }()
	for _, rt := range routes {
		if !rt.ok {
			continue
		}
		b.Run("bf16/"+rt.name, func(b *testing.B) {
			useAVX2, useAVX512 = rt.avx2, rt.avx512
			b.SetBytes(n * d * 4)
			for b.Loop() {
				deqBF16(dst, bb, d, stride, n)
			}
		})
		b.Run("q8/"+rt.name, func(b *testing.B) {
			useAVX2, useAVX512 = rt.avx2, rt.avx512
			b.SetBytes(n * d * 4)
			for b.Loop() {
				deqQ8(dst, qb, sc, d, gs, stride, 2*gph, n)
			}
		})
	}
}
