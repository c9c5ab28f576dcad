package kvcache_test

import (
	"encoding/binary"
	"math"

	"github.com/lighttransfer/lighttransfer-go/kvcache"
)

// The naive element codecs: the oracle's own reading of the formats kvcache documents, used to
// predict what a layer of each type must hold (bit for bit) and to decode what it does hold.

// naiveBF16 rounds x to bfloat16, nearest with ties to even, in float64 arithmetic.
func naiveBF16(x float32) uint16 {
	if x != x {
		return uint16(math.Float32bits(x)>>16) | 0x40
	}
	b := math.Float32bits(x)
	hi, lo := b>>16, b&0xffff
	if lo > 0x8000 || (lo == 0x8000 && hi&1 == 1) {
		hi++
	}
	return uint16(hi)
}

// naiveQ8 quantizes one group: scale max|x|/127, q = round half away from zero of x/scale.
func naiveQ8(x []float32) (q []int8, scale float32) {
	var amax float64
	for _, f := range x {
		amax = math.Max(amax, math.Abs(float64(f)))
	}
	scale = float32(amax) / 127
	q = make([]int8, len(x))
	if scale == 0 {
		return q, 0
	}
	inv := 1 / scale
	for i, f := range x {
		q[i] = int8(math.Max(-127, math.Min(127, math.Round(float64(f*inv)))))
	}
	return q, scale
}

// roundTrip returns x ([heads][hd]) as a layer of type t gives it back.
func roundTrip(t kvcache.Type, x []float32, hd int) []float32 {
	out := make([]float32, len(x))
	switch t {
	case kvcache.F32:
		copy(out, x)
	case kvcache.BF16:
		for i, f := range x {
			out[i] = math.Float32frombits(uint32(naiveBF16(f)) << 16)
		}
	case kvcache.Q8:
		gs := kvcache.GroupSize(hd)
		for h := 0; h < len(x); h += hd {
			for g := h; g < h+hd; g += gs {
				e := min(g+gs, h+hd)
				q, sc := naiveQ8(x[g:e])
				for i := range q {
					out[g+i] = float32(q[i]) * sc
				}
			}
		}
	}
	return out
}

// dequant decodes a segment's stored elements ([len(pos)][Width]) of type t.
func dequant(t kvcache.Type, b []byte, scales []float32, hd int, pos []int32) []float32 {
	switch t {
	case kvcache.F32:
		out := make([]float32, len(b)/4)
		for i := range out {
			out[i] = math.Float32frombits(binary.NativeEndian.Uint32(b[4*i:]))
		}
		return out
	case kvcache.BF16:
		out := make([]float32, len(b)/2)
		for i := range out {
			out[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(b[2*i:])) << 16)
		}
		return out
	}
	out := make([]float32, len(b))
	if len(pos) == 0 {
		return out
	}
	w := len(b) / len(pos)
	gs := kvcache.GroupSize(hd)
	gpr := len(scales) / len(pos) // groups per row
	for t := range pos {
		gi := 0
		for h := 0; h < w; h += hd {
			for g := h; g < h+hd; g += gs {
				for i := g; i < min(g+gs, h+hd); i++ {
					out[t*w+i] = float32(int8(b[t*w+i])) * scales[t*gpr+gi]
				}
				gi++
			}
		}
	}
	return out
}

// slotBytes is the oracle's slot size: positions are int32, F32 elements 4 bytes, BF16 2, Q8 1
// plus a float32 scale per group of min(32, hd) elements of each head.
func slotBytes(t kvcache.Type, s kvcache.Shape) int64 {
	w := int64(s.KVHeads * s.HeadDim)
	switch t {
	case kvcache.BF16:
		return 4*w + 4
	case kvcache.Q8:
		gs := min(32, s.HeadDim)
		g := int64(s.KVHeads * ((s.HeadDim + gs - 1) / gs))
		return 2*(w+4*g) + 4
	}
	return 8*w + 4
}
