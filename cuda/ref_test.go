package cuda

import (
	"math"
	"math/rand"
	"testing"

	"github.com/lighttransfer/lighttransfer-go/attention"
	"github.com/lighttransfer/lighttransfer-go/kvcache"
	"github.com/lighttransfer/lighttransfer-go/layerselect"
)

// Naive float64 oracles for the GPU kernels (the house rule's "naive twin"). They follow
// docs/method.md §2 literally: one score per (query, key), then a softmax, no tiling.

// refAttend computes attention of queries q [nq][H*D] at positions qpos over keys/values
// k, v [nk][KVH*D] at positions kpos (any order; negative = empty), visible under m.
// out [nq][H*D]; lse [nq][H] (natural log; -Inf when nothing is visible).
func refAttend(out, lse []float64, q []float32, qpos []int32, k, v []float32, kpos []int32, m kvcache.Policy, p attention.Params) {
	H, KVH, D := p.Heads, p.KVHeads, p.HeadDim
	scale := float64(p.Scale)
	if scale == 0 {
		scale = 1 / math.Sqrt(float64(D))
	}
	G := H / KVH
	s := make([]float64, len(kpos))
	for i, qp := range qpos {
		for h := 0; h < H; h++ {
			kh := h / G
			qv := q[(i*H+h)*D : (i*H+h+1)*D]
			mx := math.Inf(-1)
			for j, kp := range kpos {
				s[j] = math.Inf(-1)
				if !m.Visible(qp, kp) {
					continue
				}
				kv := k[(j*KVH+kh)*D : (j*KVH+kh+1)*D]
				var dot float64
				for d := range qv {
					dot += float64(qv[d]) * float64(kv[d])
				}
				s[j] = dot * scale
				mx = max(mx, s[j])
			}
			o := out[(i*H+h)*D : (i*H+h+1)*D]
			clear(o)
			if math.IsInf(mx, -1) {
				if lse != nil {
					lse[i*H+h] = mx
				}
				continue
			}
			var l float64
			for j := range kpos {
				if math.IsInf(s[j], -1) {
					continue
				}
				w := math.Exp(s[j] - mx)
				l += w
				vv := v[(j*KVH+kh)*D : (j*KVH+kh+1)*D]
				for d := range o {
					o[d] += w * float64(vv[d])
				}
			}
			for d := range o {
				o[d] /= l
			}
			if lse != nil {
				lse[i*H+h] = mx + math.Log(l)
			}
		}
	}
}

// refLazyRatio is docs/method.md §2 (Eq. 1) via LSE: q [n][H*D], k [n][KVH*D], lse [n][H].
func refLazyRatio(q, k []float32, lse []float64, n int, w layerselect.Window, p attention.Params) float64 {
	if n <= w.Sink+w.Recent {
		return 1
	}
	H, KVH, D := p.Heads, p.KVHeads, p.HeadDim
	scale := float64(p.Scale)
	if scale == 0 {
		scale = 1 / math.Sqrt(float64(D))
	}
	last := min(w.Last, n)
	var total float64
	for qi := n - last; qi < n; qi++ {
		for h := 0; h < H; h++ {
			kh := h / (H / KVH)
			mx, l := math.Inf(-1), 0.0
			for kp := 0; kp <= qi; kp++ {
				if kp >= w.Sink && kp < n-w.Recent {
					continue
				}
				var dot float64
				for d := 0; d < D; d++ {
					dot += float64(q[(qi*H+h)*D+d]) * float64(k[(kp*KVH+kh)*D+d])
				}
				x := dot * scale
				if x > mx {
					l = l*math.Exp(mx-x) + 1
					mx = x
				} else {
					l += math.Exp(x - mx)
				}
			}
			total += math.Exp(mx + math.Log(l) - lse[qi*H+h])
		}
	}
	return total / float64(last*H)
}

// randVec returns n values, normal with the given standard deviation, seeded.
func randVec(r *rand.Rand, n int, std float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64() * std)
	}
	return x
}

// roundAll rounds every value to bf16 in place and returns x.
func roundAll(x []float32) []float32 {
	for i := range x {
		x[i] = RoundBF16(x[i])
	}
	return x
}

func TestBF16Rounding(t *testing.T) {
	cases := []struct {
		in   float32
		want uint16
	}{
		{1, 0x3f80},
		{-2, 0xc000},
		{math.Float32frombits(0x3f808000), 0x3f80}, // tie, even stays
		{math.Float32frombits(0x3f818000), 0x3f82}, // tie, odd rounds up
		{math.Float32frombits(0x3f808001), 0x3f81},
		{float32(math.Inf(1)), 0x7f80},
		{math.MaxFloat32, 0x7f80}, // overflows to +Inf like __float2bfloat16_rn
	}
	for _, c := range cases {
		if got := BF16Bits(c.in); got != c.want {
			t.Errorf("BF16Bits(%v) = %#x, want %#x", c.in, got, c.want)
		}
	}
	if x := RoundBF16(float32(math.NaN())); !math.IsNaN(float64(x)) {
		t.Errorf("RoundBF16(NaN) = %v", x)
	}
}

func TestMaskVisible(t *testing.T) {
	cases := []struct {
		m      kvcache.Policy
		qp, kp int32
		want   bool
	}{
		{kvcache.Policy{}, 5, 5, true}, {kvcache.Policy{}, 5, 6, false}, {kvcache.Policy{}, 5, -1, false},
		{kvcache.Policy{Sink: 2, Window: 3}, 10, 1, true}, {kvcache.Policy{Sink: 2, Window: 3}, 10, 7, false},
		{kvcache.Policy{Sink: 2, Window: 3}, 10, 8, true}, {kvcache.Policy{Sink: 2, Window: 3}, 10, 10, true},
	}
	for _, c := range cases {
		if got := c.m.Visible(c.qp, c.kp); got != c.want {
			t.Errorf("%+v.Visible(%d, %d) = %v", c.m, c.qp, c.kp, got)
		}
	}
}

// TestRefLazyRatioMatchesAttend checks the two oracles against each other: with S covering every
// key the lazy ratio is 1, and with the refAttend lse the masses are probabilities.
func TestRefLazyRatioMatchesAttend(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	p := attention.Params{Heads: 4, KVHeads: 2, HeadDim: 8}
	n := 40
	q, k, v := randVec(r, n*32, 1), randVec(r, n*16, 1), randVec(r, n*16, 1)
	pos := make([]int32, n)
	for i := range pos {
		pos[i] = int32(i)
	}
	out, lse := make([]float64, n*32), make([]float64, n*4)
	refAttend(out, lse, q, pos, k, v, pos, kvcache.Policy{}, p)
	// Sink+Recent = n-1 < n but S still covers all keys but one: ratio just below 1.
	got := refLazyRatio(q, k, lse, n, layerselect.Window{Sink: 20, Recent: 19, Last: 8}, p)
	if got <= 0.5 || got > 1+1e-12 {
		t.Fatalf("ratio %v out of range", got)
	}
	if got := refLazyRatio(q, k, lse, n, layerselect.Window{Sink: 0, Recent: n - 1, Last: 1}, p); math.Abs(got-1) > 0.5 {
		t.Fatalf("ratio %v", got)
	}
}
