package model

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/lighttransfer/lighttransfer-go/attention"
	"github.com/lighttransfer/lighttransfer-go/loader"
	"github.com/lighttransfer/lighttransfer-go/loader/tokenizer"
	"github.com/lighttransfer/lighttransfer-go/model/internal/kernels"
)

// Model is a loaded checkpoint: configuration, weights, RoPE tables and (when the directory
// has one) the tokenizer. It is read-only after Load and safe for concurrent use; every
// sequence runs in its own Session.
type Model struct {
	cfg    loader.Config
	gen    loader.GenerationConfig
	tok    *tokenizer.Tokenizer
	logger *slog.Logger
	dir    string

	embed  matrix // [vocab][hidden]
	layers []layerWeights
	norm   []float32
	lmHead matrix // [vocab][hidden]; shares embed's storage when tied

	pool    *kernels.Pool // dense kernels' workers, shared by all sessions
	dims    *configDims
	rope    *attention.Rope
	attn    attention.Params
	threads int
	eos     []int32

	// closed is set by Close before it takes mu; every forward step holds mu for reading and
	// fails with ErrClosed once closed is set, so Close waits for the steps in flight.
	closed atomic.Bool
	mu     sync.RWMutex
}

// layerWeights holds one decoder layer's tensors; biases and q/k norms are nil when the
// architecture has none.
type layerWeights struct {
	attnNorm, mlpNorm []float32
	q, k, v, o        matrix
	qBias, kBias      []float32
	vBias             []float32
	qNorm, kNorm      []float32
	gate, up, down    matrix
}

// Load opens the Hugging Face checkpoint in dir (config.json, model.safetensors or a sharded
// index, optionally generation_config.json and tokenizer.json) and binds its weights.
// Unsupported architectures and configurations fail with errors wrapping loader.ErrUnsupported;
// missing or misshapen tensors with ErrWeights naming the tensor. ctx cancels a long load.
func Load(ctx context.Context, dir string, opts ...LoadOption) (*Model, error) {
	o, err := loadOpts(opts)
	if err != nil {
		return nil, err
	}
	ck, err := loader.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("model: load %s: %w", dir, err)
	}
	m, err := build(ctx, ck, o)
	cerr := ck.Close()
	if err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return nil, wrapf(err, "load %s", dir)
	}
	m.dir = dir
	if !o.noTok {
		if _, err := os.Stat(filepath.Join(dir, "tokenizer.json")); err == nil {
			tok, err := tokenizer.Load(dir)
			if err != nil {
				return nil, fmt.Errorf("model: load %s: %w", dir, err)
			}
			m.tok = tok
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("model: load %s: %w", dir, err)
		}
	}
	m.logger.Info("model loaded", "dir", dir, "type", m.cfg.ModelType, "layers", m.cfg.NumLayers,
		"hidden", m.cfg.HiddenSize, "vocab", m.cfg.VocabSize, "weights", m.embed.format(),
		"weight_bytes", m.WeightBytes(), "tokenizer", m.tok != nil)
	return m, nil
}

// FromCheckpoint builds a Model from an already opened checkpoint (for example one opened with
// loader.OpenFS). The weights are copied, so the caller may close the checkpoint afterwards. No
// tokenizer is attached.
func FromCheckpoint(ctx context.Context, ck *loader.Checkpoint, opts ...LoadOption) (*Model, error) {
	o, err := loadOpts(opts)
	if err != nil {
		return nil, err
	}
	m, err := build(ctx, ck, o)
	if err != nil {
		if errors.Is(err, ErrWeights) {
			return nil, err
		}
		return nil, fmt.Errorf("model: %w", err)
	}
	return m, nil
}

func build(ctx context.Context, ck *loader.Checkpoint, o loadOptions) (m *Model, err error) {
	cfg := ck.Config()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m = newModel(cfg, o)
	m.gen = ck.Generation()
	pool := m.pool
	defer func() {
		if err != nil {
			pool.Close()
		}
	}()
	m.eos = mergeIDs(cfg.EOS, m.gen.EOS)

	b := binder{ck: ck, format: o.weights, progress: o.progress}
	for _, t := range ck.Tensors() {
		b.total += t.Size
	}
	h, inter := cfg.HiddenSize, cfg.IntermediateSize
	qd, kvd := cfg.NumHeads*cfg.HeadDim, cfg.NumKVHeads*cfg.HeadDim
	m.embed = b.matrix("model.embed_tokens.weight", cfg.VocabSize, h)
	m.norm = b.vector("model.norm.weight", h)
	m.layers = make([]layerWeights, cfg.NumLayers)
	for i := range m.layers {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p := "model.layers." + strconv.Itoa(i) + "."
		l := &m.layers[i]
		l.attnNorm = b.vector(p+"input_layernorm.weight", h)
		l.mlpNorm = b.vector(p+"post_attention_layernorm.weight", h)
		l.q = b.matrix(p+"self_attn.q_proj.weight", qd, h)
		l.k = b.matrix(p+"self_attn.k_proj.weight", kvd, h)
		l.v = b.matrix(p+"self_attn.v_proj.weight", kvd, h)
		l.o = b.matrix(p+"self_attn.o_proj.weight", h, qd)
		if cfg.AttentionBias {
			l.qBias = b.vector(p+"self_attn.q_proj.bias", qd)
			l.kBias = b.vector(p+"self_attn.k_proj.bias", kvd)
			l.vBias = b.vector(p+"self_attn.v_proj.bias", kvd)
		}
		if cfg.QKNorm {
			l.qNorm = b.vector(p+"self_attn.q_norm.weight", cfg.HeadDim)
			l.kNorm = b.vector(p+"self_attn.k_norm.weight", cfg.HeadDim)
		}
		l.gate = b.matrix(p+"mlp.gate_proj.weight", inter, h)
		l.up = b.matrix(p+"mlp.up_proj.weight", inter, h)
		l.down = b.matrix(p+"mlp.down_proj.weight", h, inter)
		if b.err != nil {
			return nil, b.err
		}
	}
	if _, ok := ck.Tensor("lm_head.weight"); ok && !cfg.TieEmbeddings {
		m.lmHead = b.matrix("lm_head.weight", cfg.VocabSize, h)
	} else if cfg.TieEmbeddings {
		m.lmHead = m.embed
	} else {
		m.lmHead = b.matrix("lm_head.weight", cfg.VocabSize, h)
	}
	if b.err != nil {
		return nil, b.err
	}
	return m, nil
}

// newModel sets up what every Model needs besides its weights: attention parameters, RoPE
// tables and the dense kernels' worker pool (stopped by Close, or once the Model is collected).
func newModel(cfg loader.Config, o loadOptions) *Model {
	m := &Model{cfg: cfg, logger: o.logger, threads: o.threads, eos: cfg.EOS}
	m.dims = dims(m)
	m.pool = kernels.NewPool(o.threads)
	runtime.AddCleanup(m, func(p *kernels.Pool) { p.Close() }, m.pool)
	m.attn = attention.Params{
		Heads:   cfg.NumHeads,
		KVHeads: cfg.NumKVHeads,
		HeadDim: cfg.HeadDim,
		Scale:   float32(1 / math.Sqrt(float64(cfg.HeadDim))),
	}
	inv, scale := cfg.RopeInvFreq()
	m.rope = attention.NewRope(inv, scale, cfg.MaxPositions)
	return m
}

// mergeIDs returns the union of a and b in order of first appearance.
func mergeIDs(a, b []int32) []int32 {
	var out []int32
	seen := map[int32]bool{}
	for _, s := range [][]int32{a, b} {
		for _, id := range s {
			if !seen[id] {
				seen[id] = true
				out = append(out, id)
			}
		}
	}
	return out
}

// Config returns the checkpoint's configuration.
func (m *Model) Config() loader.Config { return m.cfg }

// GenerationConfig returns the checkpoint's generation_config.json (zero if absent).
func (m *Model) GenerationConfig() loader.GenerationConfig { return m.gen }

// Tokenizer returns the model's tokenizer, or nil when the checkpoint has none.
func (m *Model) Tokenizer() *tokenizer.Tokenizer { return m.tok }

// EOS returns the end-of-sequence token ids from config.json and generation_config.json.
func (m *Model) EOS() []int32 { return append([]int32(nil), m.eos...) }

// WeightBytes returns the bytes the weight matrices and vectors occupy in memory (a tied LM
// head is counted once).
func (m *Model) WeightBytes() int64 {
	n := m.embed.bytes() + int64(4*len(m.norm))
	if !m.lmHead.same(m.embed) {
		n += m.lmHead.bytes()
	}
	for i := range m.layers {
		l := &m.layers[i]
		for _, w := range []*matrix{&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down} {
			n += w.bytes()
		}
		for _, v := range [][]float32{l.attnNorm, l.mlpNorm, l.qBias, l.kBias, l.vBias, l.qNorm, l.kNorm} {
			n += int64(4 * len(v))
		}
	}
	return n
}

// Close stops the model's worker goroutines. It is safe to call from any goroutine and more
// than once. Close waits for the forward steps in flight to finish (a prefill chunk or a decode
// step; Test mode's selecting prefill stops at its next layer and restarts its session); after
// that every call that would compute — Generate, GenerateTokens, Chat, GenerateBatch,
// NewSession, NewBatch's Step, and Next, Forward, Clone and MakeStreaming of sessions made
// before — returns an error wrapping ErrClosed, so generations running during Close end with
// ErrClosed and the tokens produced so far.
func (m *Model) Close() {
	m.closed.Store(true)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.pool.Close()
}

// errIfClosed returns an error wrapping ErrClosed once Close has been called.
func (m *Model) errIfClosed() error {
	if m.closed.Load() {
		return fmt.Errorf("%w: the Model was closed", ErrClosed)
	}
	return nil
}

// StepReadBytes returns the bytes one decode step over these sessions reads from memory by
// the library's own accounting: the weights once (WeightBytes) plus the keys and values every
// session's attention reads (kvcache.Usage.DataBytes).
func (m *Model) StepReadBytes(sessions ...*Session) int64 {
	n := m.WeightBytes()
	for _, s := range sessions {
		n += s.Usage().DataBytes
	}
	return n
}
