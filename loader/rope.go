package loader

import "math"

// yarnMScale is YaRN's attention temperature: 1 for scale <= 1, else
// 0.1·mscale·ln(scale) + 1.
func yarnMScale(scale, mscale float64) float64 {
	if scale <= 1 {
		return 1
	}
	return 0.1*mscale*math.Log(scale) + 1
}

// defaultAttentionFactor is the YaRN attention factor used when the config
// gives none.
func (s *RopeScaling) defaultAttentionFactor() float64 {
	if s.MScale != 0 && s.MScaleAllDim != 0 {
		return yarnMScale(s.Factor, s.MScale) / yarnMScale(s.Factor, s.MScaleAllDim)
	}
	return yarnMScale(s.Factor, 1)
}

// f32pow is torch's float32 pow with a scalar base: computed in float64 and
// rounded once (powf is correctly rounded for these arguments in practice).
func f32pow(base float64, e float32) float32 {
	return float32(math.Pow(float64(float32(base)), float64(e)))
}

// RopeInvFreq returns the per-pair inverse frequencies (length HeadDim/2)
// as Hugging Face computes them in float32 for the default rope and for
// rope_scaling "linear", "llama3" and "yarn", and the attention scaling factor
// applied to cos and sin (1 unless yarn). Every step rounds to float32 where
// torch does: exponent 2i/HeadDim, RopeTheta**exponent, its reciprocal, and
// each elementwise operation of the scaling formulas (explicit conversions
// keep the compiler from fusing multiply-adds). It panics if HeadDim is not
// positive and even (a Config that passed Validate never is).
func (c Config) RopeInvFreq() (invFreq []float32, attentionScale float32) {
	dim := c.HeadDim
	if dim <= 0 || dim%2 != 0 {
		panic("loader: RopeInvFreq: HeadDim must be positive and even")
	}
	half := dim / 2
	pos := make([]float32, half) // base ** (2i/dim)
	for i := range pos {
		e := float32(2*i) / float32(dim)
		pos[i] = f32pow(c.RopeTheta, e)
	}
	inv := make([]float32, half)
	for i := range inv {
		inv[i] = 1 / pos[i]
	}
	s := c.RopeScaling
	if s == nil {
		return inv, 1
	}
	factor := float32(s.Factor)
	switch s.Type {
	case "linear":
		for i := range inv {
			inv[i] /= factor
		}
		return inv, 1
	case "llama3":
		return llama3InvFreq(inv, s), 1
	case "yarn":
		return yarnInvFreq(pos, c.RopeTheta, dim, s)
	}
	return inv, 1
}

func llama3InvFreq(inv []float32, s *RopeScaling) []float32 {
	factor := float32(s.Factor)
	oldCtx := float64(s.OriginalMaxPositions)
	lowWL := float32(oldCtx / s.LowFreqFactor)
	highWL := float32(oldCtx / s.HighFreqFactor)
	twoPi := float32(2 * math.Pi)
	low := float32(s.LowFreqFactor)
	span := float32(s.HighFreqFactor - s.LowFreqFactor)
	out := make([]float32, len(inv))
	for i, f := range inv {
		wl := twoPi / f
		scaled := f
		if wl > lowWL {
			scaled = f / factor
		}
		if !(wl < highWL) && !(wl > lowWL) {
			smooth := (float32(oldCtx)/wl - low) / span
			a := float32((1-smooth)*scaled) / factor
			b := float32(smooth * scaled)
			scaled = a + b
		}
		out[i] = scaled
	}
	return out
}

// yarnCorrectionDim is the dimension at which a frequency completes
// rotations turns over maxPos positions (float64, as Python computes it).
func yarnCorrectionDim(rotations float64, dim int, base float64, maxPos int) float64 {
	return float64(dim) * math.Log(float64(maxPos)/(rotations*2*math.Pi)) / (2 * math.Log(base))
}

func yarnInvFreq(pos []float32, base float64, dim int, s *RopeScaling) ([]float32, float32) {
	factor := float32(s.Factor)
	low := math.Floor(yarnCorrectionDim(s.BetaFast, dim, base, s.OriginalMaxPositions))
	high := math.Ceil(yarnCorrectionDim(s.BetaSlow, dim, base, s.OriginalMaxPositions))
	low = math.Max(low, 0)
	high = math.Min(high, float64(dim-1))
	if low == high {
		high += 0.001
	}
	lo32, span32 := float32(low), float32(high-low)
	out := make([]float32, len(pos))
	for i, p := range pos {
		extra := 1 / p
		inter := 1 / float32(factor*p)
		ramp := (float32(i) - lo32) / span32
		ramp = min(max(ramp, 0), 1)
		ef := 1 - ramp // extrapolation factor
		out[i] = float32(inter*float32(1-ef)) + float32(extra*ef)
	}
	af := s.AttentionFactor
	if af == 0 {
		af = s.defaultAttentionFactor()
	}
	return out, float32(af)
}
