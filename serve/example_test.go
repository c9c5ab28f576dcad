package serve_test

import (
	"context"
	"fmt"
	"sync"

	"github.com/lighttransfer/lighttransfer-go/model"
	"github.com/lighttransfer/lighttransfer-go/serve"
)

// Several goroutines submit to one Engine; their requests share forward steps and each gets
// the result a lone Generate would give.
func ExampleEngine() {
	ctx := context.Background()
	m, err := model.Load(ctx, "../testdata/stories260K")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	e, err := serve.New(m, serve.WithMaxBatch(8), serve.WithKVBudget(64<<20))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer e.Close()
	prompts := []string{"Once upon a time", "The little dog", "Lily wanted to"}
	results := make([]model.Result, len(prompts))
	var wg sync.WaitGroup
	for i, p := range prompts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], _ = e.Submit(ctx, serve.Request{Prompt: p, MaxTokens: 16, IgnoreEOS: true})
		}()
	}
	wg.Wait()
	for _, r := range results {
		fmt.Println(r.Finish, r.GeneratedTokens)
	}
	if err := e.Shutdown(ctx); err != nil {
		fmt.Println(err)
	}
	fmt.Println("completed:", e.Stats().Completed)
	// Output:
	// length 16
	// length 16
	// length 16
	// completed: 3
}
