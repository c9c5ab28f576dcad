package model

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors of package model; test for them with errors.Is. The errors returned by this
// package wrap one of these (or one of package loader's) and say which value or tensor failed.
var (
	// ErrOption reports an option value out of its documented range.
	ErrOption = errors.New("model: invalid option")
	// ErrToken reports a token id outside the vocabulary.
	ErrToken = errors.New("model: token out of range")
	// ErrContext reports a sequence longer than the session's context.
	ErrContext = errors.New("model: context length exceeded")
	// ErrWeights reports a weight tensor that is missing or has the wrong shape or dtype.
	ErrWeights = errors.New("model: bad weights")
	// ErrNoTokenizer reports a text operation on a model loaded without a tokenizer.
	ErrNoTokenizer = errors.New("model: no tokenizer")
	// ErrClosed reports use of a Model after Close (also through sessions made before), or of a
	// Session after its own Close.
	ErrClosed = errors.New("model: closed")
)

// wrapped is an error that adds where it happened to an inner error of this package without
// repeating the "model: " prefix: "model: prompt 1: invalid option: …". errors.Is and
// errors.As see the inner error.
type wrapped struct {
	msg string
	err error
}

func (e *wrapped) Error() string { return e.msg }
func (e *wrapped) Unwrap() error { return e.err }

// wrapf returns err prefixed with "model: " and the formatted context; a leading "model: " of
// err's own message is dropped.
func wrapf(err error, format string, args ...any) error {
	return &wrapped{msg: "model: " + fmt.Sprintf(format, args...) + ": " + strings.TrimPrefix(err.Error(), "model: "), err: err}
}
