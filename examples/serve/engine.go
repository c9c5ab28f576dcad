package main

import (
	"context"

	"github.com/lighttransfer/lighttransfer-go/model"
	"github.com/lighttransfer/lighttransfer-go/serve"
)

// engine is what the handlers need from the serving engine.
type engine interface {
	Submit(ctx context.Context, req serve.Request) (model.Result, error)
	Stats() serve.Stats
}

// lifecycle is the engine as run drives it.
type lifecycle interface {
	engine
	Shutdown(ctx context.Context) error
	Close() error
}

var _ lifecycle = (*serve.Engine)(nil)

// newEngine starts the engine for m with the command line's limits.
func newEngine(m *model.Model, c *config) (*serve.Engine, error) {
	opts := []serve.Option{serve.WithKVBudget(c.budget), serve.WithMaxBatch(c.maxBatch), serve.WithQueue(c.queue)}
	if c.stepTokens > 0 {
		opts = append(opts, serve.WithStepTokens(c.stepTokens))
	}
	return serve.New(m, opts...)
}
