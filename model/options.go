package model

import (
	"fmt"
	"log/slog"
	"runtime"
)

// LoadOption configures Load and Random. A nil LoadOption is ignored.
type LoadOption func(*loadOptions)

type loadOptions struct {
	threads  int
	logger   *slog.Logger
	progress func(done, total int64)
	noTok    bool
	weights  WeightFormat
}

// loadOpts applies opts (skipping nil ones), checks them and fills in the defaults.
func loadOpts(opts []LoadOption) (loadOptions, error) {
	var o loadOptions
	for _, f := range opts {
		if f != nil {
			f(&o)
		}
	}
	if o.weights < WeightsAuto || o.weights > WeightsBF16 {
		return o, fmt.Errorf("%w: weight format %d is none of WeightsAuto, WeightsF32, WeightsBF16", ErrOption, int(o.weights))
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	if o.threads <= 0 {
		o.threads = runtime.GOMAXPROCS(0)
	}
	return o, nil
}

// WeightFormat selects how Load keeps weight matrices in memory.
type WeightFormat int

const (
	// WeightsAuto keeps BF16 checkpoints in bf16 and everything else in float32 (the default).
	WeightsAuto WeightFormat = iota
	// WeightsF32 widens every weight matrix to float32.
	WeightsF32
	// WeightsBF16 keeps every weight matrix in bfloat16 (F32 and F16 checkpoints are rounded to
	// nearest even), halving the bytes a decode step reads. Activations stay float32.
	WeightsBF16
)

// String returns the format's name.
func (f WeightFormat) String() string {
	switch f {
	case WeightsAuto:
		return "auto"
	case WeightsF32:
		return "f32"
	case WeightsBF16:
		return "bf16"
	}
	return "WeightFormat(?)"
}

// WithThreads sets the number of goroutines the dense kernels use per forward step.
// n <= 0 (the default) means runtime.GOMAXPROCS(0).
func WithThreads(n int) LoadOption { return func(o *loadOptions) { o.threads = n } }

// WithLogger sets the logger Load and sessions report to. Without it (or with nil) the
// library logs nothing.
func WithLogger(l *slog.Logger) LoadOption { return func(o *loadOptions) { o.logger = l } }

// WithProgress sets a callback that Load calls as weights are bound, with the bytes done and
// the total; it is called from Load's goroutine.
func WithProgress(f func(done, total int64)) LoadOption {
	return func(o *loadOptions) { o.progress = f }
}

// WithoutTokenizer skips loading tokenizer.json even when the directory has one.
func WithoutTokenizer() LoadOption { return func(o *loadOptions) { o.noTok = true } }

// WithWeightFormat chooses the in-memory format of the weight matrices (default WeightsAuto).
// A value other than the WeightFormat constants makes Load fail with ErrOption.
func WithWeightFormat(f WeightFormat) LoadOption { return func(o *loadOptions) { o.weights = f } }
