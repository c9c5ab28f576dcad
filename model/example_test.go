package model_test

import (
	"context"
	"fmt"
	"log"
	"strings"

	"github.com/lighttransfer/lighttransfer-go/model"
)

// storiesDir is the small real model in the repository's testdata.
const storiesDir = "../testdata/stories260K"

// Load a checkpoint and generate greedily from a prompt.
func Example() {
	ctx := context.Background()
	m, err := model.Load(ctx, storiesDir)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	res, err := m.Generate(ctx, "Once upon a time", model.WithMaxTokens(12))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%q (%s after %d tokens)\n", res.Text, res.Finish, res.GeneratedTokens)
	// Output: ", there was a little girl named Lily. She" (length after 12 tokens)
}

// Stream text as it is generated and stop at a stop string.
func ExampleModel_Generate_streaming() {
	ctx := context.Background()
	m, err := model.Load(ctx, storiesDir)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	var sb strings.Builder
	res, err := m.Generate(ctx, "Once upon a time", model.WithMaxTokens(100),
		model.WithStop("park."),
		model.WithStream(func(t model.Token) error {
			sb.WriteString(t.Text) // e.g. write to a terminal or an HTTP response
			return nil
		}))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%q\n", sb.String())
	fmt.Println(res.Finish)
	// Output:
	// ", there was a little girl named Lily. She loved to play outside in the "
	// stop
}

// Run LightTransfer-Test: the prefill picks the lazy layers and truncates their caches.
func ExampleTestMode() {
	ctx := context.Background()
	m, err := model.Load(ctx, storiesDir)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	s, err := m.NewSession(model.TestMode(model.WithKeep(0.5), model.WithSink(4), model.WithWindow(32)))
	if err != nil {
		log.Fatal(err)
	}
	prompt, err := m.Tokenizer().Encode(strings.Repeat("Lily went to the park and played with her ball. ", 8), true)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := s.Next(ctx, prompt); err != nil {
		log.Fatal(err)
	}
	fmt.Println("lazy layers:", s.Lazy())
	u := s.Usage()
	fmt.Println("streaming layers hold:", u.Layers[s.Lazy()[0]].Tokens, "tokens")
	// Output:
	// lazy layers: [1 3]
	// streaming layers hold: 35 tokens
}
