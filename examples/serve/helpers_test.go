package main

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lighttransfer/lighttransfer-go/model"
	"github.com/lighttransfer/lighttransfer-go/serve"
)

// realEngine returns a factory of serve engines with opts, closed at the test's end.
func realEngine(opts ...serve.Option) func(*testing.T, *model.Model) engine {
	return func(t *testing.T, m *model.Model) engine {
		e, err := serve.New(m, opts...)
		require.NoError(t, err)
		t.Cleanup(func() { e.Close() })
		return e
	}
}

// generate runs req alone on m with the model's own Generate, Chat or GenerateTokens: the
// sequential reference a served request must equal.
func generate(ctx context.Context, m *model.Model, req serve.Request) (model.Result, error) {
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
