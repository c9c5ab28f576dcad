package train

import "errors"

// Sentinel errors; every error of this package wraps one of them (or a loader/model error),
// so callers can test a failure's class with errors.Is.
var (
	// ErrConfig reports invalid training settings: lazy layers out of range or repeated, a
	// non-positive window, a sequence longer than the model's context, bad hyper-parameters.
	ErrConfig = errors.New("train: invalid configuration")
	// ErrData reports an empty or malformed dataset, naming the file and line.
	ErrData = errors.New("train: invalid data")
	// ErrNonFinite reports a loss or gradient that is NaN or infinite, naming the step.
	ErrNonFinite = errors.New("train: non-finite loss")
	// ErrUnsupported reports a checkpoint this package cannot train (for example Qwen3's
	// q/k norms).
	ErrUnsupported = errors.New("train: unsupported checkpoint")
	// ErrCheckpoint reports a resumable checkpoint that does not match the run.
	ErrCheckpoint = errors.New("train: invalid checkpoint")
)
