package attention_test

import (
	"fmt"

	"github.com/lighttransfer/lighttransfer-go/attention"
)

// Example prefills three tokens with one query head and one KV head of width
// 2, then decodes a fourth token over the cached keys held as two segments
// in arbitrary slot order.
func Example() {
	p := attention.Params{Heads: 1, KVHeads: 1, HeadDim: 2, Scale: 1}
	rope := attention.NewRope([]float32{1}, 1, 16)

	q := []float32{1, 0, 1, 0, 1, 0}
	k := []float32{1, 0, 0, 1, 1, 1}
	v := []float32{1, 0, 0, 1, 2, 2}
	pos := []int32{0, 1, 2}
	rope.Apply(q, pos, p.Heads, p.HeadDim)
	rope.Apply(k, pos, p.KVHeads, p.HeadDim)

	out := make([]float32, len(q))
	lse := make([]float32, len(pos)*p.Heads)
	attention.Prefill(out, q, k, v, len(pos), 0, 0, p, lse)
	fmt.Printf("token 0 sees only itself: out=%.3f lse=%.3f\n", out[0:2], lse[0])

	// Decode position 3 with a streaming mask: sink 1, window 2 sees keys 0, 2 and 3.
	k3, v3 := []float32{0, 0}, []float32{5, 5}
	rope.Apply(k3, []int32{3}, 1, 2)
	kv := attention.Segments{
		{K: append(k[2:6:6], k[0:2]...), V: append(v[2:6:6], v[0:2]...), Pos: []int32{1, 2, 0}},
		{K: k3, V: v3, Pos: []int32{3}},
	}
	q3 := []float32{0, 0} // a zero query attends uniformly
	dec := make([]float32, 2)
	attention.Decode(dec, q3, 3, kv, 1, 2, p)
	fmt.Printf("uniform over keys 0, 2, 3: %.3f\n", dec)
	// Output:
	// token 0 sees only itself: out=[1.000 0.000] lse=1.000
	// uniform over keys 0, 2, 3: [2.667 2.333]
}
