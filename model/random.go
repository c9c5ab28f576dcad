package model

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/lighttransfer/lighttransfer-go/loader"
)

// Random builds a Model of the given configuration with random weights, for benchmarks and
// tests that need a model of a real shape without its checkpoint. Matrix entries are drawn
// uniformly with standard deviation 0.02 (Hugging Face's initializer range), norm weights are
// 1 and biases 0, all from the seed. WithWeightFormat(WeightsBF16) stores bf16 weights;
// WeightsQ8 and WeightsQ4 quantize the drawn weights as Load would.
func Random(ctx context.Context, cfg loader.Config, seed uint64, opts ...LoadOption) (*Model, error) {
	o, err := loadOpts(opts)
	if err != nil {
		return nil, err
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("model: random: %w", err)
	}
	m, err := newModel(cfg, o)
	if err != nil {
		return nil, fmt.Errorf("model: random: %w", err)
	}
	r := &randomizer{rng: rand.New(rand.NewPCG(seed, seed^0x5851f42d4c957f2d)), format: o.weights,
		progress: o.progress}
	if err := m.describe(ctx, r); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}
