package tokenizer_test

import (
	"fmt"
	"log"

	"github.com/lighttransfer/lighttransfer-go/loader/tokenizer"
)

// Example encodes and decodes with the stories260K tokenizer (a 512-token
// sentencepiece-style BPE with byte fallback; Encode with addSpecial
// prepends BOS).
func Example() {
	tk, err := tokenizer.Load("../../testdata/stories260K")
	if err != nil {
		log.Fatal(err)
	}
	ids, err := tk.Encode("Once upon a time", true)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ids)
	text, err := tk.Decode(ids, true)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%q\n", text)
	// Output:
	// [1 403 407 261 378]
	// "Once upon a time"
}
