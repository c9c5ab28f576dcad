package model

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/lighttransfer/lighttransfer-go/loader"
)

// Random builds a Model of the given configuration with random weights, for benchmarks and
// tests that need a model of a real shape without its checkpoint. Matrix entries are drawn
// uniformly with standard deviation 0.02 (Hugging Face's initializer range), norm weights are
// 1 and biases 0, all from the seed. WithWeightFormat(WeightsBF16) stores bf16 weights.
func Random(ctx context.Context, cfg loader.Config, seed uint64, opts ...LoadOption) (*Model, error) {
	o, err := loadOpts(opts)
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("model: random: %w", err)
	}
	m := newModel(cfg, o)

	rng := rand.New(rand.NewPCG(seed, seed^0x5851f42d4c957f2d))
	bf16 := o.weights == WeightsBF16
	mat := func(rows, cols int) matrix {
		w := matrix{rows: rows, cols: cols}
		// Uniform on [-a, a] has standard deviation a/sqrt(3).
		a := float32(0.02 * math.Sqrt(3))
		if bf16 {
			w.bf16 = make([]uint16, rows*cols)
			for i := range w.bf16 {
				w.bf16[i] = toBF16(a * (2*rng.Float32() - 1))
			}
		} else {
			w.f32 = make([]float32, rows*cols)
			for i := range w.f32 {
				w.f32[i] = a * (2*rng.Float32() - 1)
			}
		}
		return w
	}
	ones := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = 1
		}
		return v
	}
	h, inter := cfg.HiddenSize, cfg.IntermediateSize
	qd, kvd := cfg.NumHeads*cfg.HeadDim, cfg.NumKVHeads*cfg.HeadDim
	m.embed = mat(cfg.VocabSize, h)
	m.norm = ones(h)
	m.layers = make([]layerWeights, cfg.NumLayers)
	for i := range m.layers {
		if err := ctx.Err(); err != nil {
			m.pool.Close()
			return nil, err
		}
		l := &m.layers[i]
		l.attnNorm, l.mlpNorm = ones(h), ones(h)
		l.q, l.k, l.v, l.o = mat(qd, h), mat(kvd, h), mat(kvd, h), mat(h, qd)
		if cfg.AttentionBias {
			l.qBias, l.kBias, l.vBias = make([]float32, qd), make([]float32, kvd), make([]float32, kvd)
		}
		if cfg.QKNorm {
			l.qNorm, l.kNorm = ones(cfg.HeadDim), ones(cfg.HeadDim)
		}
		l.gate, l.up, l.down = mat(inter, h), mat(inter, h), mat(h, inter)
		if o.progress != nil {
			o.progress(int64(i+1), int64(cfg.NumLayers))
		}
	}
	if cfg.TieEmbeddings {
		m.lmHead = m.embed
	} else {
		m.lmHead = mat(cfg.VocabSize, h)
	}
	return m, nil
}
