package attention

import (
	"math"
	"math/rand/v2"
)

// naiveAttend is the oracle twin of Attend: it builds the full score matrix
// over every key of every segment, masks it with Mask.Visible, and computes
// the softmax, the value sum and the log-sum-exp in float64.
func naiveAttend(q []float32, qpos []int32, kv Segments, m mask, p Params) (out, lse []float32) {
	H, KVH, D := p.Heads, p.KVHeads, p.HeadDim
	G := H / KVH
	scale := float64(p.scale())
	var ks, vs [][]float32
	var ps []int32
	for _, s := range kv {
		for i, pos := range s.Pos {
			ks = append(ks, s.K[i*KVH*D:][:KVH*D])
			vs = append(vs, s.V[i*KVH*D:][:KVH*D])
			ps = append(ps, pos)
		}
	}
	n := len(qpos)
	out = make([]float32, n*H*D)
	lse = make([]float32, n*H)
	sc := make([]float64, len(ks))
	for t := 0; t < n; t++ {
		for h := 0; h < H; h++ {
			g := h / G
			qr := q[(t*H+h)*D:][:D]
			mx := math.Inf(-1)
			for j := range ks {
				sc[j] = math.Inf(-1)
				if !m.visible(qpos[t], ps[j]) {
					continue
				}
				var d float64
				for i, x := range qr {
					d += float64(x) * float64(ks[j][g*D+i])
				}
				sc[j] = d * scale
				mx = math.Max(mx, sc[j])
			}
			if math.IsInf(mx, -1) {
				lse[t*H+h] = float32(math.Inf(-1))
				continue
			}
			var sum float64
			for j := range sc {
				sc[j] = math.Exp(sc[j] - mx)
				sum += sc[j]
			}
			o := make([]float64, D)
			for j := range sc {
				if sc[j] == 0 {
					continue
				}
				w := sc[j] / sum
				for i := range o {
					o[i] += w * float64(vs[j][g*D+i])
				}
			}
			for i := range o {
				out[(t*H+h)*D+i] = float32(o[i])
			}
			lse[t*H+h] = float32(mx + math.Log(sum))
		}
	}
	return out, lse
}

// randSlice returns n values uniform in [-a, a).
func randSlice(r *rand.Rand, n int, a float32) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = (2*r.Float32() - 1) * a
	}
	return x
}

// splitSegments stores the tokens with positions pos (keys k, values v,
// [len(pos)][w]) in nseg segments: tokens are dealt to segments at random and
// each segment's slot order is shuffled.
func splitSegments(r *rand.Rand, k, v []float32, pos []int32, w, nseg int) Segments {
	nseg = max(nseg, 1)
	idx := make([][]int, nseg)
	for t := range pos {
		s := r.IntN(nseg)
		idx[s] = append(idx[s], t)
	}
	segs := make(Segments, nseg)
	for s, ix := range idx {
		r.Shuffle(len(ix), func(a, b int) { ix[a], ix[b] = ix[b], ix[a] })
		seg := Segment{K: make([]float32, 0, len(ix)*w), V: make([]float32, 0, len(ix)*w), Pos: make([]int32, 0, len(ix))}
		for _, t := range ix {
			seg.K = append(seg.K, k[t*w:][:w]...)
			seg.V = append(seg.V, v[t*w:][:w]...)
			seg.Pos = append(seg.Pos, pos[t])
		}
		segs[s] = seg
	}
	return segs
}
