package model

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/lighttransfer/lighttransfer-go/loader"
	"github.com/lighttransfer/lighttransfer-go/loader/tokenizer"
)

// Model is a loaded checkpoint: configuration, weights, its compute backend and (when the
// directory has one) the tokenizer. It is read-only after Load and safe for concurrent use;
// every sequence runs in its own Session.
type Model struct {
	cfg    loader.Config
	gen    loader.GenerationConfig
	tok    *tokenizer.Tokenizer
	logger *slog.Logger
	dir    string

	arch   *architecture // the weights' description (arch.go)
	embed  matrix        // [vocab][hidden]
	layers []layerWeights
	norm   []float32
	lmHead matrix // [vocab][hidden]; shares embed's storage when tied

	be   backend // the compute (backend_cpu.go), shared by all sessions
	dims *configDims
	eos  []int32

	// closed is set by Close before it takes mu; every forward step holds mu for reading and
	// fails with ErrClosed once closed is set, so Close waits for the steps in flight.
	closed atomic.Bool
	mu     sync.RWMutex
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
		"hidden", m.cfg.HiddenSize, "vocab", m.cfg.VocabSize, "weights", m.weightFormat(),
		"weight_bytes", m.WeightBytes(), "tokenizer", m.tok != nil)
	return m, nil
}

func build(ctx context.Context, ck *loader.Checkpoint, o loadOptions) (*Model, error) {
	cfg := ck.Config()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := newModel(cfg, o)
	if err != nil {
		return nil, err
	}
	m.gen = ck.Generation()
	m.eos = mergeIDs(cfg.EOS, m.gen.EOS)
	b := &binder{ck: ck, format: o.weights, progress: o.progress}
	for _, t := range ck.Tensors() {
		b.total += t.Size
	}
	if err := m.describe(ctx, b); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// newModel sets up what every Model needs besides its weights: its architecture's
// description, layers sized for it, and the compute backend (closed by Close, or once the
// Model is collected).
func newModel(cfg loader.Config, o loadOptions) (*Model, error) {
	arch, err := archFor(&cfg)
	if err != nil {
		return nil, err
	}
	m := &Model{cfg: cfg, logger: o.logger, eos: cfg.EOS, arch: arch}
	m.dims = newDims(&m.cfg)
	m.layers = make([]layerWeights, cfg.NumLayers)
	be := newCPUBackend(&m.cfg, o.threads)
	m.be = be
	runtime.AddCleanup(m, func(b backend) { b.close() }, backend(be))
	return m, nil
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
	var c byteCounter
	_ = m.describe(context.Background(), &c)
	return c.n
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
	m.be.close()
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
