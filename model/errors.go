package model

import "errors"

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
	// ErrClosed reports use of a Model after Close.
	ErrClosed = errors.New("model: closed")
)
