package loader_test

import (
	"fmt"
	"log"
	"path/filepath"

	"github.com/lighttransfer/lighttransfer-go/loader"
)

// Example opens a checkpoint, reads its configuration and one weight matrix.
func Example() {
	dir := filepath.Join("..", "testdata", "reference", "llama-tiny")
	ckpt, err := loader.Open(dir)
	if err != nil {
		log.Fatal(err)
	}
	defer ckpt.Close()

	cfg := ckpt.Config()
	fmt.Println(cfg.ModelType, cfg.NumLayers, "layers,", cfg.NumHeads, "heads,", cfg.NumKVHeads, "KV heads, head_dim", cfg.HeadDim)
	invFreq, scale := cfg.RopeInvFreq()
	fmt.Println("rope pairs:", len(invFreq), "scale:", scale)

	emb, err := ckpt.Float32("model.embed_tokens.weight")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("embeddings:", emb.Shape())

	_, err = ckpt.Float32("no.such.tensor")
	fmt.Println(err != nil)
	// Output:
	// llama 4 layers, 4 heads, 2 KV heads, head_dim 16
	// rope pairs: 8 scale: 1
	// embeddings: (256, 64)
	// true
}
