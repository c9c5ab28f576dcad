package attention

import (
	"fmt"
	"math"
)

// Rope applies rotary position embeddings in Hugging Face's "rotate_half"
// layout: for head width d the pairs are (i, i+d/2), i < d/2. The cos/sin of
// position p and pair i are computed exactly like Hugging Face in float32:
// angle = float32(p)·invFreq[i] rounded to float32, cos and sin of that angle
// evaluated in float64 and rounded to float32, then multiplied (in float32)
// by the attention scale. Positions in [0, maxPos) come from a table built by
// NewRope; other positions are computed on the fly with the same arithmetic.
// A Rope is read-only after NewRope and safe for concurrent use.
type Rope struct {
	invFreq []float32
	scale   float32
	maxPos  int
	cos     []float32 // [maxPos][len(invFreq)]
	sin     []float32
}

// NewRope returns a Rope for the per-pair inverse frequencies invFreq
// (len = HeadDim/2, as loader.Config.RopeInvFreq returns them) and the
// attention scale applied to cos and sin (1 unless YaRN), with a precomputed
// table for positions 0..maxPos-1 (maxPos <= 0: no table). It copies invFreq.
// It panics if invFreq is empty.
func NewRope(invFreq []float32, attentionScale float32, maxPos int) *Rope {
	if len(invFreq) == 0 {
		panic("attention: NewRope with empty invFreq")
	}
	maxPos = max(maxPos, 0)
	h := len(invFreq)
	r := &Rope{
		invFreq: append([]float32(nil), invFreq...),
		scale:   attentionScale,
		maxPos:  maxPos,
		cos:     make([]float32, maxPos*h),
		sin:     make([]float32, maxPos*h),
	}
	for p := 0; p < maxPos; p++ {
		for i := range h {
			r.cos[p*h+i], r.sin[p*h+i] = r.cosSin(int32(p), i)
		}
	}
	return r
}

// cosSin computes the scaled cos and sin of position p, pair i.
func (r *Rope) cosSin(p int32, i int) (c, s float32) {
	angle := float32(p) * r.invFreq[i]
	// float32 conversions keep each step rounded like PyTorch (no fused ops).
	c = float32(math.Cos(float64(angle)))
	s = float32(math.Sin(float64(angle)))
	return float32(c * r.scale), float32(s * r.scale)
}

// Apply rotates x in place: x is [len(pos)][heads*headDim], token t at
// position pos[t]. For each head and pair i < headDim/2:
// x'[i] = x[i]·cos − x[i+headDim/2]·sin and x'[i+headDim/2] = x[i+headDim/2]·cos + x[i]·sin,
// each product rounded to float32 before the sum (as PyTorch computes
// q·cos + rotate_half(q)·sin). It panics if headDim != 2·len(invFreq) or
// len(x) != len(pos)·heads·headDim.
func (r *Rope) Apply(x []float32, pos []int32, heads, headDim int) {
	h := len(r.invFreq)
	if headDim != 2*h || heads <= 0 {
		panic(fmt.Sprintf("attention: Rope.Apply headDim=%d heads=%d, want headDim %d and heads > 0", headDim, heads, 2*h))
	}
	if len(x) != len(pos)*heads*headDim {
		panic(fmt.Sprintf("attention: Rope.Apply len(x)=%d, want %d (%d tokens × %d heads × %d)",
			len(x), len(pos)*heads*headDim, len(pos), heads, headDim))
	}
	var cbuf, sbuf [128]float32
	for t, p := range pos {
		var cs, sn []float32
		if p >= 0 && int(p) < r.maxPos {
			cs, sn = r.cos[int(p)*h:][:h], r.sin[int(p)*h:][:h]
		} else if h <= len(cbuf) {
			cs, sn = cbuf[:h], sbuf[:h]
			for i := range h {
				cs[i], sn[i] = r.cosSin(p, i)
			}
		} else {
			// Very wide heads: compute per element without a buffer.
			row := x[t*heads*headDim:][:heads*headDim]
			for hd := 0; hd < heads; hd++ {
				v := row[hd*headDim:][:headDim]
				for i := range h {
					c, s := r.cosSin(p, i)
					rot(v, i, h, c, s)
				}
			}
			continue
		}
		row := x[t*heads*headDim:][:heads*headDim]
		for hd := 0; hd < heads; hd++ {
			v := row[hd*headDim:][:headDim]
			lo, hi := v[:h], v[h:][:h]
			cs, sn := cs[:h], sn[:h]
			for i := range lo {
				a, b := lo[i], hi[i]
				lo[i] = float32(a*cs[i]) - float32(b*sn[i])
				hi[i] = float32(b*cs[i]) + float32(a*sn[i])
			}
		}
	}
}

// rot rotates pair (i, i+h) of v by (c, s).
func rot(v []float32, i, h int, c, s float32) {
	a, b := v[i], v[i+h]
	v[i] = float32(a*c) - float32(b*s)
	v[i+h] = float32(b*c) + float32(a*s)
}
