package kvcache_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lighttransfer/lighttransfer-go/kvcache"
)

// naiveQ4Grid returns x on the 15-step grid from min to max of xs (float32 as documented).
func naiveQ4Grid(xs []float32) []float32 {
	lo, hi := float32(math.Inf(1)), float32(math.Inf(-1))
	for _, x := range xs {
		lo, hi = min(lo, x), max(hi, x)
	}
	step := (hi - lo) / 15
	out := make([]float32, len(xs))
	for i, x := range xs {
		var c float64
		if step != 0 {
			c = math.Max(0, math.Min(15, math.Round(float64((x-lo)/step))))
		}
		out[i] = float32(c)*step + lo
	}
	return out
}

// naiveQ4Block returns 32 tokens as a closed Q4 block stands for them: keys per channel over
// the block, values per token per group of min(32, hd) elements of a head.
func naiveQ4Block(toks []tok, w, hd int) []tok {
	out := make([]tok, len(toks))
	for t := range toks {
		out[t] = tok{k: make([]float32, w), v: make([]float32, w), pos: toks[t].pos}
	}
	col := make([]float32, len(toks))
	for c := range w {
		for t := range toks {
			col[t] = toks[t].k[c]
		}
		for t, x := range naiveQ4Grid(col) {
			out[t].k[c] = x
		}
	}
	gs := min(32, hd)
	for t := range toks {
		for h := 0; h < w; h += hd {
			for a := h; a < h+hd; a += gs {
				e := min(a+gs, h+hd)
				copy(out[t].v[a:e], naiveQ4Grid(toks[t].v[a:e]))
			}
		}
	}
	return out
}

// naiveQ4 is the oracle of a Q4 layer: the tokens given to it (in), and what it holds.
type naiveQ4 struct {
	p     kvcache.Policy
	in    []tok
	dirty bool // reset or converted: allocation no longer follows from in alone
}

// held returns the tokens the layer holds as it stands for them, in arrival order.
func (n *naiveQ4) held(w, hd int) []tok {
	in := n.in
	var out []tok
	if n.p.IsStreaming() {
		ns := min(n.p.Sink, len(in))
		out, in = append(out, in[:ns]...), in[ns:]
	}
	closed := len(in) / 32
	first := 0
	if n.p.IsStreaming() {
		first = max(0, closed-(n.p.Window+31)/32)
	}
	for b := first; b < closed; b++ {
		out = append(out, naiveQ4Block(in[b*32:(b+1)*32], w, hd)...)
	}
	return append(out, in[closed*32:]...)
}

// bytes is what the layer allocates: sink+32 float32 slots once it has tokens, and each block
// ever closed (streaming: at most the ring).
func (n *naiveQ4) bytes(s kvcache.Shape) int64 {
	if len(n.in) == 0 {
		return 0
	}
	w, g := int64(s.KVHeads*s.HeadDim), int64(s.KVHeads*((s.HeadDim+min(32, s.HeadDim)-1)/min(32, s.HeadDim)))
	block := 2*32*((w+1)/2) + 2*w*4 + 32*2*g*4 + 32*4
	rest := len(n.in)
	blocks := rest / 32
	if n.p.IsStreaming() {
		rest = max(0, rest-n.p.Sink)
		blocks = min(rest/32, (n.p.Window+31)/32)
	}
	return int64(n.p.Sink+32)*(8*w+4) + int64(blocks)*block
}

// decodeQ4 is the oracle's reading of a Q4 segment: codes two a byte (low nibble first), keys
// code·step[c] + min[c], values code·step + min of their token's group.
func decodeQ4(k, v []byte, ks, vs []float32, pos []int32, w, hd int) []tok {
	rb := (w + 1) / 2
	gs := min(32, hd)
	gph := (hd + gs - 1) / gs
	g := w / hd * gph
	out := make([]tok, len(pos))
	for t := range pos {
		out[t] = tok{k: make([]float32, w), v: make([]float32, w), pos: pos[t]}
		for c := range w {
			kc := k[t*rb+c/2] >> (4 * (c & 1)) & 15
			vc := v[t*rb+c/2] >> (4 * (c & 1)) & 15
			gi := c/hd*gph + c%hd/gs
			out[t].k[c] = float32(kc)*ks[c] + ks[w+c]
			out[t].v[c] = float32(vc)*vs[t*2*g+gi] + vs[t*2*g+g+gi]
		}
	}
	return out
}

// q4View returns a layer's tokens by position, decoded by the oracle.
func q4View(t *testing.T, c *kvcache.Cache, layer int) map[int32]tok {
	t.Helper()
	s := c.Shape()
	w := s.KVHeads * s.HeadDim
	got := map[int32]tok{}
	vw := c.View(layer)
	for i := range vw.NumSegments() {
		elem, kb, vb, ks, vs, pos := vw.SegmentQ(i)
		var toks []tok
		if elem == int(kvcache.F32) {
			k, v, p := vw.Segment(i)
			for j := range p {
				toks = append(toks, tok{k: slices.Clone(k[j*w : (j+1)*w]), v: slices.Clone(v[j*w : (j+1)*w]), pos: p[j]})
			}
		} else {
			require.Equal(t, int(kvcache.Q4), elem)
			toks = decodeQ4(kb, vb, ks, vs, pos, w, s.HeadDim)
		}
		for _, tk := range toks {
			_, dup := got[tk.pos]
			require.False(t, dup, "position %d twice", tk.pos)
			got[tk.pos] = tk
		}
	}
	return got
}

// TestQ4AgainstNaive drives Q4 caches (full and streaming layers, converts, resets, clones)
// and the naive oracle with the same seeded operations and compares every held token's key
// and value (bit-exact: the oracle quantizes the same way), Len and the bytes.
func TestQ4AgainstNaive(t *testing.T) {
	for seed := range uint64(30) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 44))
			s := kvcache.Shape{KVHeads: 1 + rng.IntN(2), HeadDim: []int{1, 3, 8, 40}[rng.IntN(4)]}
			w := s.KVHeads * s.HeadDim
			policies := make([]kvcache.Policy, 1+rng.IntN(3))
			for i := range policies {
				if rng.IntN(2) == 0 {
					policies[i] = kvcache.Streaming(rng.IntN(5), 1+rng.IntN(70))
				}
			}
			c, err := kvcache.New(s, policies, kvcache.WithType(kvcache.Q4, kvcache.Q4))
			require.NoError(t, err)
			naive := make([]naiveQ4, len(policies))
			for i, p := range policies {
				naive[i].p = p
			}
			next := int32(0)
			var snap *kvcache.Cache
			var snapWant []map[int32]tok
			for step := range 60 {
				l := rng.IntN(len(policies))
				switch op := rng.IntN(12); {
				case op == 0 && !naive[l].p.IsStreaming():
					p := kvcache.Streaming(rng.IntN(4), 1+rng.IntN(60))
					require.NoError(t, c.Convert(l, p))
					h := naive[l].held(w, s.HeadDim)
					ns := min(p.Sink, len(h))
					naive[l] = naiveQ4{p: p, in: append(slices.Clone(h[:ns]), h[max(ns, len(h)-(p.Window-1)):]...), dirty: true}
				case op == 1 && step%5 == 0:
					c.Reset()
					for i := range naive {
						naive[i] = naiveQ4{p: policies[i], dirty: true}
					}
				case op == 2:
					snap = c.Clone()
					snapWant = make([]map[int32]tok, len(policies))
					for i := range policies {
						snapWant[i] = q4View(t, c, i)
					}
				default:
					k, v, pos, toks := makeTokens(rng, w, rng.IntN(50), &next)
					require.NoError(t, c.Append(l, k, v, pos))
					naive[l].in = append(naive[l].in, toks...)
				}
				u := c.Usage()
				for i := range policies {
					want := naive[i].held(w, s.HeadDim)
					got := q4View(t, c, i)
					require.Len(t, got, len(want), "step %d layer %d", step, i)
					require.Equal(t, len(want), c.Len(i))
					for _, tk := range want {
						g, ok := got[tk.pos]
						require.True(t, ok, "step %d layer %d: position %d missing", step, i, tk.pos)
						require.Equal(t, tk.k, g.k, "step %d layer %d position %d key", step, i, tk.pos)
						require.Equal(t, tk.v, g.v, "step %d layer %d position %d value", step, i, tk.pos)
					}
					require.Equal(t, kvcache.Q4, u.Layers[i].Type)
					if !naive[i].dirty {
						require.Equal(t, naive[i].bytes(s), u.Layers[i].Bytes, "step %d layer %d bytes", step, i)
					}
				}
				if snap != nil {
					for i := range policies {
						require.Equal(t, snapWant[i], q4View(t, snap, i))
					}
				}
			}
		})
	}
}

// TestQ4Estimate: Estimate equals the bytes of fresh Q4 caches (mixed with other types) after
// any number of appended tokens, and the Qwen2.5-0.5B figures: a closed block of 32 tokens of
// 2 KV heads × 64 is 2·32·64 code bytes + 2·128·4 key scales + 32·2·4·4 value scales + 128
// position bytes = 6272 bytes, 196 a token.
func TestQ4Estimate(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 1))
	for trial := range 30 {
		s := kvcache.Shape{KVHeads: 1 + rng.IntN(3), HeadDim: 1 + rng.IntN(70)}
		policies := make([]kvcache.Policy, 1+rng.IntN(4))
		for i := range policies {
			policies[i] = randomPolicy(rng)
		}
		opts := []kvcache.Option{kvcache.WithType(kvcache.Type(rng.IntN(4)), kvcache.Q4)}
		if trial%2 == 0 {
			opts[0] = kvcache.WithType(kvcache.Q4, kvcache.Type(rng.IntN(4)))
		}
		c, err := kvcache.New(s, policies, opts...)
		require.NoError(t, err)
		total, next := 0, int32(0)
		for total < 300 {
			n := 1 + rng.IntN(45)
			k, v, pos, _ := makeTokens(rng, s.Width(), n, &next)
			for l := range policies {
				require.NoError(t, c.Append(l, k, v, pos))
			}
			total += n
			require.Equal(t, kvcache.Estimate(s, policies, total, opts...), c.Usage().Bytes, "trial %d: %d tokens %v", trial, total, policies)
		}
	}
	s := kvcache.Shape{KVHeads: 2, HeadDim: 64}
	require.Equal(t, int64(196), kvcache.Q4.SlotBytes(s))
	full := make([]kvcache.Policy, 24)
	require.Equal(t, int64(24*(32*1028+512*6272)), kvcache.Estimate(s, full, 16384, kvcache.WithType(kvcache.Q4, kvcache.Q4)))
}
