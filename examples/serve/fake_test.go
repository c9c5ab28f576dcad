package main

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/lighttransfer/lighttransfer-go/model"
)

// seqEngine is an in-test engine: it runs each request alone with the model's own
// Generate, Chat or GenerateTokens, one at a time, with at most queue requests waiting (more
// get errOverloaded). It stands for the batching engine in tests of the HTTP side, and gives
// the outputs the real engine must match.
type seqEngine struct {
	m       *model.Model
	queue   int
	mu      sync.Mutex // held by the running request
	waiting atomic.Int64
	running atomic.Int64
	done    atomic.Int64
	cancels atomic.Int64
	rejects atomic.Int64
	err     error // when set, every Submit fails with it
}

var _ engine = (*seqEngine)(nil)

func (e *seqEngine) Submit(ctx context.Context, req Request) (model.Result, error) {
	if e.err != nil {
		e.rejects.Add(1)
		return model.Result{}, e.err
	}
	if e.waiting.Add(1) > int64(e.queue)+1 {
		e.waiting.Add(-1)
		e.rejects.Add(1)
		return model.Result{}, errOverloaded
	}
	e.mu.Lock()
	e.waiting.Add(-1)
	e.running.Add(1)
	defer func() { e.running.Add(-1); e.mu.Unlock() }()
	res, err := generate(ctx, e.m, req)
	if err != nil && ctx.Err() != nil {
		e.cancels.Add(1)
	} else if err == nil {
		e.done.Add(1)
	}
	return res, err
}

func (e *seqEngine) Stats() Stats {
	return Stats{Running: int(e.running.Load()), Waiting: int(e.waiting.Load()),
		Completed: e.done.Load(), Canceled: e.cancels.Load(), Rejected: e.rejects.Load()}
}

// generate runs req alone on m: the sequential reference of a request.
func generate(ctx context.Context, m *model.Model, req Request) (model.Result, error) {
	opts := []model.GenerateOption{model.WithMaxTokens(req.MaxTokens), model.WithSampling(req.Sampling),
		model.WithStop(req.Stop...), model.WithSessionOptions(req.Session...), model.WithStream(req.Stream)}
	if req.IgnoreEOS {
		opts = append(opts, model.WithIgnoreEOS())
	}
	switch {
	case req.Messages != nil:
		return m.Chat(ctx, req.Messages, opts...)
	case req.Tokens != nil:
		return m.GenerateTokens(ctx, req.Tokens, opts...)
	}
	return m.Generate(ctx, req.Prompt, opts...)
}
