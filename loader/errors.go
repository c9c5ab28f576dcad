package loader

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. Every error returned by this package wraps exactly one of
// them, so callers can test the class of a failure with errors.Is; the
// wrapping *FormatError says where (file, tensor, key, byte offset) and what.
var (
	// ErrNotFound reports a missing file, tensor or required key.
	ErrNotFound = errors.New("loader: not found")
	// ErrFormat reports malformed input: truncated files, lying or invalid
	// safetensors headers, invalid JSON, out-of-range values.
	ErrFormat = errors.New("loader: invalid format")
	// ErrDType reports an unknown dtype, or a dtype an accessor cannot convert.
	ErrDType = errors.New("loader: unsupported dtype")
	// ErrUnsupported reports a valid configuration this library does not
	// implement (sliding windows, some rope types, activations, model types).
	ErrUnsupported = errors.New("loader: unsupported")
	// ErrShape reports a tensor whose byte size disagrees with its shape and
	// dtype, or a shape whose element count overflows.
	ErrShape = errors.New("loader: shape mismatch")
)

// FormatError is the error type of this package. It names where a problem is
// (any field may be empty or zero when unknown or irrelevant) and unwraps to
// one of the sentinels ErrNotFound, ErrFormat, ErrDType, ErrUnsupported or
// ErrShape.
type FormatError struct {
	File   string // file the problem is in, base name or path as given
	Tensor string // tensor name, if any
	Key    string // JSON key (e.g. "rope_scaling.factor"), if any
	Offset int64  // byte offset within File, if meaningful (0: not reported)
	Msg    string // what is wrong and what was expected
	Err    error  // sentinel
}

// Error formats the error as "loader: file: tensor "t": key "k": at byte N: msg: class".
func (e *FormatError) Error() string {
	var b strings.Builder
	b.WriteString("loader: ")
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(": ")
	}
	if e.Tensor != "" {
		fmt.Fprintf(&b, "tensor %q: ", e.Tensor)
	}
	if e.Key != "" {
		fmt.Fprintf(&b, "key %q: ", e.Key)
	}
	if e.Offset != 0 {
		fmt.Fprintf(&b, "at byte %d: ", e.Offset)
	}
	b.WriteString(e.Msg)
	if e.Err != nil {
		b.WriteString(" (")
		b.WriteString(strings.TrimPrefix(e.Err.Error(), "loader: "))
		b.WriteString(")")
	}
	return b.String()
}

// Unwrap returns the sentinel.
func (e *FormatError) Unwrap() error { return e.Err }

func errf(sentinel error, format string, args ...any) *FormatError {
	return &FormatError{Msg: fmt.Sprintf(format, args...), Err: sentinel}
}

// withFile sets File on err when it is a *FormatError without one.
func withFile(err error, file string) error {
	var fe *FormatError
	if errors.As(err, &fe) && fe.File == "" {
		fe.File = file
	}
	return err
}
