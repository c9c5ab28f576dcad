package kvcache_test

import (
	"testing"

	"github.com/lighttransfer/lighttransfer-go/kvcache"
)

// benchShape is one Qwen2.5-0.5B layer: 2 KV heads × 64.
var benchShape = kvcache.Shape{KVHeads: 2, HeadDim: 64}

func benchAppend(b *testing.B, p kvcache.Policy) {
	for _, t := range []kvcache.Type{kvcache.F32, kvcache.BF16, kvcache.Q8} {
		b.Run(t.String(), func(b *testing.B) { benchAppendType(b, p, t) })
	}
}

func benchAppendType(b *testing.B, p kvcache.Policy, t kvcache.Type) {
	c, err := kvcache.New(benchShape, []kvcache.Policy{p}, kvcache.WithType(t, t))
	if err != nil {
		b.Fatal(err)
	}
	k := make([]float32, benchShape.Width())
	v := make([]float32, benchShape.Width())
	pos := []int32{0}
	const maxTokens = 8192 // full layers: Reset (keeping the blocks) to bound memory
	b.ReportAllocs()
	b.SetBytes(t.SlotBytes(benchShape))
	for b.Loop() {
		if pos[0] == maxTokens {
			pos[0] = 0
			c.Reset()
		}
		if err := c.Append(0, k, v, pos); err != nil {
			b.Fatal(err)
		}
		pos[0]++
	}
}

// BenchmarkAppendFull appends one token at a time to a full layer of each element type (the
// bf16 and q8 layers encode it on the way; the first
// 8192 tokens allocate 32 blocks once; afterwards the blocks are reused).
func BenchmarkAppendFull(b *testing.B) { benchAppend(b, kvcache.Full()) }

// BenchmarkAppendStreaming appends one token at a time to a streaming layer.
func BenchmarkAppendStreaming(b *testing.B) { benchAppend(b, kvcache.Streaming(4, 1020)) }

// BenchmarkView iterates every segment of a 4096-token full layer and a
// streaming(4,1020) layer, touching one float per token.
func BenchmarkView(b *testing.B) {
	const n = 4096
	c, err := kvcache.New(benchShape, []kvcache.Policy{kvcache.Full(), kvcache.Streaming(4, 1020)})
	if err != nil {
		b.Fatal(err)
	}
	w := benchShape.Width()
	k := make([]float32, n*w)
	pos := make([]int32, n)
	for i := range pos {
		pos[i] = int32(i)
		k[i*w] = 1
	}
	for l := range 2 {
		if err := c.Append(l, k, k, pos); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	var sum float32
	for b.Loop() {
		for l := range 2 {
			view := c.View(l)
			for s := range view.NumSegments() {
				kk, _, pp := view.Segment(s)
				for i := range pp {
					sum += kk[i*w]
				}
			}
		}
	}
	if sum == 0 {
		b.Fatal("no tokens seen")
	}
}
