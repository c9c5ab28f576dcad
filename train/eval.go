package train

import (
	"context"
	"fmt"

	"github.com/lighttransfer/lighttransfer-go/model"
)

// NLL is the mean negative log-likelihood (nats) of tokens[from:] given the tokens before
// each, as m computes them over the whole sequence in one forward: with the streaming mask on
// every row of mask.Lazy (fixed mode), or with full attention when mask.Lazy is empty.
func NLL(ctx context.Context, m *model.Model, tokens []int32, from int, mask Mask) (float64, error) {
	if from < 1 || from >= len(tokens) {
		return 0, fmt.Errorf("%w: scoring from token %d of %d (want 1 ≤ from < %d)", ErrConfig, from, len(tokens), len(tokens))
	}
	if err := mask.Validate(m.Config().NumLayers); err != nil {
		return 0, err
	}
	if len(tokens) > m.Config().MaxPositions {
		return 0, fmt.Errorf("%w: %d tokens exceed the model's context of %d", ErrConfig, len(tokens), m.Config().MaxPositions)
	}
	opt := model.FullAttention()
	if len(mask.Lazy) > 0 {
		opt = model.FixedMode(mask.Lazy, model.WithSink(mask.Sink), model.WithWindow(mask.Window))
	}
	s, err := m.NewSession(opt)
	if err != nil {
		return 0, fmt.Errorf("train: %w", err)
	}
	defer s.Close()
	lg, err := s.Forward(ctx, tokens)
	if err != nil {
		return 0, fmt.Errorf("train: %w", err)
	}
	V := m.Config().VocabSize
	x := lg.Data().([]float32)
	var sum float64
	for t := from; t < len(tokens); t++ {
		row := x[(t-1)*V : t*V]
		sum += logSumExp(row) - float64(row[tokens[t]])
	}
	return sum / float64(len(tokens)-from), nil
}
