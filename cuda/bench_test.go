//go:build cuda

package cuda

import (
	"fmt"
	"testing"

	"github.com/lighttransfer/lighttransfer-go/attention"
	"github.com/lighttransfer/lighttransfer-go/kvcache"
	"github.com/lighttransfer/lighttransfer-go/layerselect"
)

var benchLayouts = []struct {
	name string
	p    attention.Params
}{
	{"qwen0.5b", attention.Params{Heads: 14, KVHeads: 2, HeadDim: 64}},
	{"llama8b", attention.Params{Heads: 32, KVHeads: 8, HeadDim: 128}},
}

var benchContexts = []int{1 << 10, 8 << 10, 32 << 10}

// fill returns n pseudo-random values in [-1, 1) (a fast xorshift: benchmarks only need data).
func fill(n int, seed uint32) []float32 {
	x := make([]float32, n)
	s := seed | 1
	for i := range x {
		s ^= s << 13
		s ^= s >> 17
		s ^= s << 5
		x[i] = float32(int32(s)) / (1 << 31)
	}
	return x
}

// benchPrefill times causal prefill (Mask{}) or streaming prefill (sink 4, window 1020).
func benchPrefill(b *testing.B, m kvcache.Policy) {
	for _, l := range benchLayouts {
		for _, n := range benchContexts {
			b.Run(fmt.Sprintf("%s/ctx%dK", l.name, n>>10), func(b *testing.B) {
				p := l.p
				qw, kw := p.Heads*p.HeadDim, p.KVHeads*p.HeadDim
				qb, kb, vb := upload(b, F32, fill(n*qw, 1)), upload(b, BF16, fill(n*kw, 2)), upload(b, BF16, fill(n*kw, 3))
				ob, lb := alloc(b, F32, n*qw), alloc(b, F32, n*p.Heads)
				defer func() { qb.Free(); kb.Free(); vb.Free(); ob.Free(); lb.Free() }()
				run := func() {
					if err := dev.Prefill(ob, qb, kb, vb, n, m, p, lb); err != nil {
						b.Fatal(err)
					}
				}
				run()
				if err := dev.Sync(); err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					run()
				}
				if err := dev.Sync(); err != nil {
					b.Fatal(err)
				}
				// causal FLOPs: 2 products of n²/2 × HeadDim per head (streaming: the visible part).
				vis := float64(n) * float64(n) / 2
				if m.Window > 0 {
					w := float64(min(n, m.Window+m.Sink))
					vis = w * float64(n)
				}
				b.ReportMetric(4*vis*float64(p.HeadDim*p.Heads)/b.Elapsed().Seconds()*float64(b.N)/1e12, "TFLOP/s")
			})
		}
	}
}

func BenchmarkPrefill(b *testing.B)          { benchPrefill(b, kvcache.Policy{}) }
func BenchmarkPrefillStreaming(b *testing.B) { benchPrefill(b, kvcache.Policy{Sink: 4, Window: 1020}) }

// BenchmarkPrefillV1 times the first prefill form (64-row blocks, no copy pipelining).
func BenchmarkPrefillV1(b *testing.B) {
	dev.prefillForm = 1
	defer func() { dev.prefillForm = 0 }()
	benchPrefill(b, kvcache.Policy{})
}

// BenchmarkPrefillV3 times the third prefill form (two blocks per SM; head dim 64 only differs).
func BenchmarkPrefillV3(b *testing.B) {
	dev.prefillForm = 3
	defer func() { dev.prefillForm = 0 }()
	benchPrefill(b, kvcache.Policy{})
}

// benchDecode times one decode step at position ctx-1 over a full cache of ctx tokens, or over a
// streaming cache (sink 4 + ring 1020) that has seen ctx tokens.
func benchDecode(b *testing.B, pol kvcache.Policy) {
	for _, l := range benchLayouts {
		for _, n := range benchContexts {
			b.Run(fmt.Sprintf("%s/ctx%dK", l.name, n>>10), func(b *testing.B) {
				p := l.p
				s := kvcache.Shape{KVHeads: p.KVHeads, HeadDim: p.HeadDim}
				c, err := dev.NewCache(s, []kvcache.Policy{pol}, n)
				if err != nil {
					b.Fatal(err)
				}
				defer c.Free()
				const chunk = 4096
				kb, vb := upload(b, F32, fill(chunk*s.Width(), 5)), upload(b, F32, fill(chunk*s.Width(), 6))
				for t := 0; t < n; t += chunk {
					if err := c.Append(0, kb, vb, min(chunk, n-t), int32(t)); err != nil {
						b.Fatal(err)
					}
				}
				kb.Free()
				vb.Free()
				qw := p.Heads * p.HeadDim
				qb, ob := upload(b, F32, fill(qw, 7)), alloc(b, F32, qw)
				defer func() { qb.Free(); ob.Free() }()
				m := kvcache.Policy{Sink: pol.Sink, Window: pol.Window}
				kv := c.View(0)
				run := func() {
					if err := dev.Decode(ob, qb, int32(n-1), kv, m, p, nil); err != nil {
						b.Fatal(err)
					}
				}
				run()
				if err := dev.Sync(); err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					run()
				}
				if err := dev.Sync(); err != nil {
					b.Fatal(err)
				}
				bytes := float64(kv.Slots) * float64(s.Width()) * 4
				b.ReportMetric(bytes*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
			})
		}
	}
}

func BenchmarkDecodeFull(b *testing.B) { benchDecode(b, kvcache.Full()) }

// BenchmarkDecodeFullV1 times the first decode form (one block barrier per chunk) for comparison.
func BenchmarkDecodeFullV1(b *testing.B) {
	dev.decodeForm = 1
	defer func() { dev.decodeForm = 0 }()
	benchDecode(b, kvcache.Full())
}

// BenchmarkDecodeFullSplitMajor times the default decode with the split index fastest in the grid.
func BenchmarkDecodeFullSplitMajor(b *testing.B) {
	dev.decodeSplitMajor = true
	defer func() { dev.decodeSplitMajor = false }()
	benchDecode(b, kvcache.Full())
}

// BenchmarkDecodeFullV2 times the second decode form (8 lanes per key) for comparison.
func BenchmarkDecodeFullV2(b *testing.B) {
	dev.decodeForm = 2
	defer func() { dev.decodeForm = 0 }()
	benchDecode(b, kvcache.Full())
}
func BenchmarkDecodeStreaming(b *testing.B) { benchDecode(b, kvcache.Streaming(4, 1020)) }

// BenchmarkLazyRatio times the lazy-ratio reduction (w_sink 4, w_recent 1020, w_last 32),
// including the copy of the per-(query, head) masses back to the host.
func BenchmarkLazyRatio(b *testing.B) {
	for _, l := range benchLayouts {
		for _, n := range benchContexts {
			b.Run(fmt.Sprintf("%s/ctx%dK", l.name, n>>10), func(b *testing.B) {
				p := l.p
				qw, kw := p.Heads*p.HeadDim, p.KVHeads*p.HeadDim
				qb, kb := upload(b, F32, fill(n*qw, 1)), upload(b, BF16, fill(n*kw, 2))
				lb := upload(b, F32, fill(n*p.Heads, 3))
				defer func() { qb.Free(); kb.Free(); lb.Free() }()
				w := layerselect.Window{Sink: 4, Recent: 1020, Last: 32}
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := dev.LazyRatio(qb, kb, lb, n, w, p); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
