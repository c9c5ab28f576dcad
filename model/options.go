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
	if o.weights < WeightsAuto || o.weights > WeightsQ4 {
		return o, fmt.Errorf("%w: weight format %d is none of WeightsAuto, WeightsF32, WeightsBF16, WeightsQ8, WeightsQ4", ErrOption, int(o.weights))
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
	// WeightsQ8 quantizes every weight matrix at load to 8 bits in blocks of 32 input columns,
	// each block with a float16 scale (llama.cpp's q8_0 layout: 34 bytes per 32 weights).
	// Decode products quantize the activations to int8 per block too; prefill products
	// dequantize weight tiles and keep float32 activations.
	WeightsQ8
	// WeightsQ4 quantizes the layers' weight matrices at load to 4 bits in blocks of 32 input
	// columns, each block with a float16 scale and offset chosen to minimise its squared error
	// (20 bytes per 32 weights). The embedding and the LM head use WeightsQ8: their errors go
	// straight into every token's input and logits.
	WeightsQ4
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
	case WeightsQ8:
		return "q8"
	case WeightsQ4:
		return "q4"
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

// ParseWeightFormat returns the format String names ("auto", "f32", "bf16", "q8", "q4"); any
// other name is an error wrapping ErrOption.
func ParseWeightFormat(s string) (WeightFormat, error) {
	for f := WeightsAuto; f <= WeightsQ4; f++ {
		if f.String() == s {
			return f, nil
		}
	}
	return 0, fmt.Errorf("%w: weight format %q is none of auto, f32, bf16, q8, q4", ErrOption, s)
}
