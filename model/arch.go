package model

import (
	"context"
	"fmt"
	"strconv"

	"github.com/lighttransfer/lighttransfer-go/loader"
)

// dim names one size of an architecture's tensors; configDims.of turns it into a number.
type dim uint8

const (
	dimNone   dim = iota // no second dimension: the tensor is a vector
	dimHidden            // hidden_size
	dimInter             // intermediate_size
	dimQ                 // num_heads × head_dim
	dimKV                // num_kv_heads × head_dim
	dimHead              // head_dim
	dimVocab             // vocab_size
)

// layerTensor is one row of an architecture's table: a per-layer tensor's Hugging Face name
// (after "model.layers.N."), its shape, whether it is present, and where it lives in
// layerWeights. Exactly one of mat and vec is set; a vector has cols dimNone.
type layerTensor struct {
	name       string
	rows, cols dim
	fill       float32                   // a random model's value for every entry of a vector (norms 1, biases 0)
	present    func(*loader.Config) bool // nil: always present
	mat        func(*layerWeights) *matrix
	vec        func(*layerWeights) *[]float32
}

// architecture is one model family, described once: the table of its per-layer tensors.
// Loading (binder), random weights (randomizer) and byte accounting (byteCounter) all walk
// this description, so an architecture is added by writing its table in a file of its own
// (see llama.go) and naming it in archFor, plus its config defaults in package loader. The
// forward pass is shared: an optional tensor that is absent stays nil and the forward skips it.
type architecture struct {
	name  string
	layer []layerTensor
}

// archFor returns the architecture of a config's model type.
func archFor(c *loader.Config) (*architecture, error) {
	switch c.ModelType {
	case "llama", "mistral", "qwen2", "qwen3":
		return &llamaFamily, nil
	}
	return nil, fmt.Errorf("%w: model_type %q has no architecture description", loader.ErrUnsupported, c.ModelType)
}

// weightVisitor receives every tensor of a model's description once, in order: binder reads
// them from a checkpoint, randomizer draws them, byteCounter adds up their sizes.
type weightVisitor interface {
	matrix(w *matrix, name string, rows, cols int)
	vector(v *[]float32, name string, n int, fill float32)
	// lmHead visits the LM head: tied to the embedding when the config says so.
	lmHead(head, embed *matrix, name string, rows, cols int, tied bool)
	// layerDone is called after each layer's tensors; a non-nil error stops the walk.
	layerDone(i, n int) error
}

// describe walks m's weights (m.layers already sized to the config's layers) through v and
// returns the first error of v or ctx.
func (m *Model) describe(ctx context.Context, v weightVisitor) error {
	cfg, d := &m.cfg, m.dims
	v.matrix(&m.embed, embedName, d.vocab, d.h)
	v.vector(&m.norm, "model.norm.weight", d.h, 1)
	for i := range m.layers {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := "model.layers." + strconv.Itoa(i) + "."
		l := &m.layers[i]
		for _, t := range m.arch.layer {
			if t.present != nil && !t.present(cfg) {
				continue
			}
			if t.mat != nil {
				v.matrix(t.mat(l), p+t.name, d.of(t.rows), d.of(t.cols))
			} else {
				v.vector(t.vec(l), p+t.name, d.of(t.rows), t.fill)
			}
		}
		if err := v.layerDone(i, len(m.layers)); err != nil {
			return err
		}
	}
	v.lmHead(&m.lmHead, &m.embed, lmHeadName, d.vocab, d.h, cfg.TieEmbeddings)
	return v.layerDone(len(m.layers), len(m.layers))
}

// The Hugging Face names of the embedding and the LM head.
const (
	embedName  = "model.embed_tokens.weight"
	lmHeadName = "lm_head.weight"
)

// configDims are the sizes the forward pass and the architecture tables need, derived once
// from the config.
type configDims struct {
	h, inter, qd, kvd, heads, kvHeads, headDim, vocab int
}

func newDims(c *loader.Config) *configDims {
	return &configDims{h: c.HiddenSize, inter: c.IntermediateSize, qd: c.NumHeads * c.HeadDim,
		kvd: c.NumKVHeads * c.HeadDim, heads: c.NumHeads, kvHeads: c.NumKVHeads, headDim: c.HeadDim,
		vocab: c.VocabSize}
}

// of returns the size x names.
func (d *configDims) of(x dim) int {
	switch x {
	case dimHidden:
		return d.h
	case dimInter:
		return d.inter
	case dimQ:
		return d.qd
	case dimKV:
		return d.kvd
	case dimHead:
		return d.headDim
	case dimVocab:
		return d.vocab
	}
	return 0
}
