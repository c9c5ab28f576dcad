package main

import (
	"context"
	"errors"
	"time"

	"github.com/lighttransfer/lighttransfer-go/loader/tokenizer"
	"github.com/lighttransfer/lighttransfer-go/model"
)

// PLACEHOLDER until package serve lands: these mirror serve.Request, serve.Stats and the
// engine's sentinels, and are replaced by them at the merge.

// Request mirrors serve.Request.
type Request struct {
	Prompt    string
	Messages  []tokenizer.Message
	Tokens    []int32
	MaxTokens int
	Sampling  model.Sampling
	Stop      []string
	IgnoreEOS bool
	Session   []model.SessionOption
	Stream    func(model.Token) error
}

// Stats mirrors serve.Stats.
type Stats struct {
	Running, Waiting                         int
	KVBytes, KVBudget                        int64
	DecodeTokensPerSecond                    float64
	TimeToFirstTokenP50, TimeToFirstTokenP99 time.Duration
	Completed, Canceled, Rejected            int64
}

var (
	errOverloaded = errors.New("serve: overloaded")
	errClosed     = errors.New("serve: closed")
	errTooLarge   = errors.New("serve: too large")
)

// engine is what the handlers need from the serving engine (serve.Engine satisfies it).
type engine interface {
	Submit(ctx context.Context, req Request) (model.Result, error)
	Stats() Stats
}

// lifecycle is the engine as run drives it.
type lifecycle interface {
	engine
	Shutdown(ctx context.Context) error
	Close() error
}

// newEngine starts the engine for m with the command line's limits.
func newEngine(m *model.Model, c *config) (lifecycle, error) {
	return nil, errors.New("serve: engine not merged yet")
}
