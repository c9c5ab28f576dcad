package model

import (
	"context"
	"fmt"

	"github.com/lighttransfer/lighttransfer-go/attention"
	"github.com/lighttransfer/lighttransfer-go/kvcache"
	"github.com/lighttransfer/lighttransfer-go/layerselect"
)

// buffers are the activations of one forward step, sized for the most rows (tokens of all
// parts together) and parts seen so far. They only grow, so a session or batch allocates once
// for its largest step.
type buffers struct {
	rows, parts         int
	x, xn, q, k, v, att []float32 // [rows][…]
	lse                 []float32 // [rows][heads]
	pos                 []int32   // [rows]
	gate, up            []float32 // [chunk][intermediate]
	lastX               []float32 // [parts][hidden]: each part's last row, final-normed
	lastLogits          []float32 // [parts][vocab]
}

// grow sizes b for steps of up to rows tokens in up to parts parts; chunk bounds the rows the
// MLP processes at once.
func (b *buffers) grow(cfg *configDims, rows, parts, chunk int) {
	if b.gate == nil {
		b.gate = make([]float32, chunk*cfg.inter)
		b.up = make([]float32, chunk*cfg.inter)
	}
	if rows > b.rows {
		b.rows = rows
		b.x = make([]float32, rows*cfg.h)
		b.xn = make([]float32, rows*cfg.h)
		b.q = make([]float32, rows*cfg.qd)
		b.att = make([]float32, rows*cfg.qd)
		b.k = make([]float32, rows*cfg.kvd)
		b.v = make([]float32, rows*cfg.kvd)
		b.lse = make([]float32, rows*cfg.heads)
		b.pos = make([]int32, rows)
	}
	if parts > b.parts {
		b.parts = parts
		b.lastX = make([]float32, parts*cfg.h)
		b.lastLogits = make([]float32, parts*cfg.vocab)
	}
}

// configDims are the sizes the forward pass needs, derived once from the config.
type configDims struct {
	h, inter, qd, kvd, heads, vocab int
}

func dims(m *Model) *configDims {
	c := m.cfg
	return &configDims{h: c.HiddenSize, inter: c.IntermediateSize, qd: c.NumHeads * c.HeadDim,
		kvd: c.NumKVHeads * c.HeadDim, heads: c.NumHeads, vocab: c.VocabSize}
}

// part is one sequence's share of a forward step: its tokens (at positions s.pos…), whether
// this is Test mode's selecting prefill, and where its logits go. all, when non-nil, receives
// every row's logits; otherwise the last row's logits land in the step's lastLogits.
type part struct {
	s         *Session
	tokens    []int32
	selecting bool
	all       []float32
	row       int // first row of the part within the step
}

// forward runs one step: the tokens of every part through every layer, layer by layer, with
// the dense products done once over all rows (so a batch of sequences reads the weights once)
// and attention, cache appends and Test-mode selection done per part.
//
// This is the one forward function of the Llama family (Llama, Mistral, Qwen2 with q/k/v
// bias, Qwen3 with q/k RMSNorm): per-layer differences are data (weights present or not, each
// session's per-layer attention mask), not branches on the architecture.
//
// A step runs to its end, except a single part's selecting prefill (Test mode's first
// forward): it checks ctx and Close between layers and, when stopped, restarts its session
// (Session.restart) and returns an error wrapping ctx's error or ErrClosed. On Close the step
// fails with ErrClosed before it starts.
func (m *Model) forward(ctx context.Context, parts []part, b *buffers, chunk int) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if err := m.errIfClosed(); err != nil {
		return err
	}
	interruptible := len(parts) == 1 && parts[0].selecting
	cfg := m.cfg
	dm := m.dims
	n := 0
	for i := range parts {
		parts[i].row = n
		n += len(parts[i].tokens)
	}
	b.grow(dm, n, len(parts), chunk)
	h, inter := dm.h, dm.inter
	H, KV, D := cfg.NumHeads, cfg.NumKVHeads, cfg.HeadDim
	qd, kvd := dm.qd, dm.kvd
	eps := float32(cfg.RMSNormEps)
	x, xn := b.x[:n*h], b.xn[:n*h]
	q, k, v, att := b.q[:n*qd], b.k[:n*kvd], b.v[:n*kvd], b.att[:n*qd]
	pos := b.pos[:n]
	for _, pt := range parts {
		for i, t := range pt.tokens {
			r := pt.row + i
			m.embed.row(x[r*h:(r+1)*h], int(t))
			pos[r] = int32(pt.s.pos + i)
		}
	}
	for i := range parts {
		pt := &parts[i]
		s := pt.s
		pt.selecting = pt.selecting && len(pt.tokens) > s.sink+s.window && len(pt.tokens) >= s.last
		if pt.selecting && s.ratios == nil {
			s.ratios = make([]float64, cfg.NumLayers)
		}
	}
	p := m.attn
	p.Threads = m.threads
	d := dense{p: m.pool}

	for li := range m.layers {
		if interruptible {
			err := ctx.Err()
			if err == nil {
				err = m.errIfClosed()
			}
			if err != nil {
				parts[0].s.restart()
				return fmt.Errorf("model: selecting prefill stopped before layer %d, session restarted at position 0: %w", li, err)
			}
		}
		l := &m.layers[li]

		// Attention block: projections over all rows, attention per part.
		for i := 0; i < n; i++ {
			rmsNorm(xn[i*h:(i+1)*h], x[i*h:(i+1)*h], l.attnNorm, eps)
		}
		d.matmul3(xn, n, q, &l.q, k, &l.k, v, &l.v)
		addBias(q, l.qBias)
		addBias(k, l.kBias)
		addBias(v, l.vBias)
		if l.qNorm != nil {
			headNorm(q, l.qNorm, eps)
			headNorm(k, l.kNorm, eps)
		}
		m.rope.Apply(q, pos, H, D)
		m.rope.Apply(k, pos, KV, D)
		for i := range parts {
			if err := m.attend(li, &parts[i], b, p); err != nil {
				return err
			}
		}
		d.matmul(xn, att, n, &l.o)
		addTo(x, xn)

		// MLP block, in row chunks so the intermediate buffers stay chunk-sized.
		c := len(b.gate) / inter
		for lo := 0; lo < n; lo += c {
			hi := min(lo+c, n)
			r := hi - lo
			xr, xnr := x[lo*h:hi*h], xn[lo*h:hi*h]
			for i := 0; i < r; i++ {
				rmsNorm(xnr[i*h:(i+1)*h], xr[i*h:(i+1)*h], l.mlpNorm, eps)
			}
			g, u := b.gate[:r*inter], b.up[:r*inter]
			d.matmul3(xnr, r, g, &l.gate, u, &l.up, nil, nil)
			d.siluMul(g, g, u)
			d.matmul(xnr, g, r, &l.down)
			addTo(xr, xnr)
		}
	}

	// Final norm and LM head: every row of parts that asked for all logits (their last row is
	// copied from there), else each part's last row, all such rows in one product.
	V := dm.vocab
	lastX := b.lastX[:len(parts)*h]
	needHead := false
	for i := range parts {
		pt := &parts[i]
		s := pt.s
		if pt.selecting {
			s.lazy = s.online.Lazy()
		}
		s.pos += len(pt.tokens)
		lo, hi := pt.row, pt.row+len(pt.tokens)
		if pt.all != nil {
			for r := lo; r < hi; r++ {
				rmsNorm(xn[r*h:(r+1)*h], x[r*h:(r+1)*h], m.norm, eps)
			}
			d.matmul(pt.all, xn[lo*h:hi*h], hi-lo, &m.lmHead)
			continue
		}
		needHead = true
		rmsNorm(lastX[i*h:(i+1)*h], x[(hi-1)*h:hi*h], m.norm, eps)
	}
	if needHead {
		d.matmul(b.lastLogits[:len(parts)*V], lastX, len(parts), &m.lmHead)
	}
	for i, pt := range parts {
		if pt.all != nil {
			copy(b.lastLogits[i*V:(i+1)*V], pt.all[(len(pt.tokens)-1)*V:])
		}
	}
	return nil
}

// attend runs layer li's attention for one part over its session's cache plus the part's own
// keys, appends those keys and values to the cache and, in Test mode's selecting prefill,
// measures the layer's lazy ratio and truncates the layers chosen lazy.
func (m *Model) attend(li int, pt *part, b *buffers, p attention.Params) error {
	s := pt.s
	dm := m.dims
	lo, hi := pt.row, pt.row+len(pt.tokens)
	q, att := b.q[lo*dm.qd:hi*dm.qd], b.att[lo*dm.qd:hi*dm.qd]
	k, v := b.k[lo*dm.kvd:hi*dm.kvd], b.v[lo*dm.kvd:hi*dm.kvd]
	pos := b.pos[lo:hi]
	s.ckv = chunkKV{view: s.cache.View(li), k: k, v: v, pos: pos}
	var lse []float32
	if pt.selecting {
		lse = b.lse[lo*dm.heads : hi*dm.heads]
	}
	attention.Attend(att, q, pos, &s.ckv, s.masks[li], p, lse)
	if err := s.cache.Append(li, k, v, pos); err != nil {
		s.err = fmt.Errorf("model: layer %d: %w", li, err)
		return s.err
	}
	s.peakKV = max(s.peakKV, s.cache.Bytes())
	if !pt.selecting {
		return nil
	}
	cfg := m.cfg
	r := layerselect.LazyRatio(q, k, lse, len(pt.tokens), layerselect.Window{Sink: s.sink, Recent: s.window, Last: s.last},
		layerselect.Heads{Heads: cfg.NumHeads, KVHeads: cfg.NumKVHeads, HeadDim: cfg.HeadDim, Scale: p.Scale})
	s.ratios[li] = r
	for _, j := range s.online.Observe(li, r) {
		if err := s.cache.Convert(j, kvcache.Streaming(s.sink, s.window)); err != nil {
			s.err = fmt.Errorf("model: truncating layer %d: %w", j, err)
			return s.err
		}
		s.masks[j] = attention.Mask{Sink: s.sink, Window: s.window}
	}
	return nil
}

// addBias adds bias (len width) to every row of x; a nil bias does nothing.
func addBias(x, bias []float32) {
	if bias == nil {
		return
	}
	w := len(bias)
	for i := 0; i+w <= len(x); i += w {
		addTo(x[i:i+w], bias)
	}
}

// headNorm applies RMSNorm with weight w (len head_dim) to every head vector of x (Qwen3's
// q_norm and k_norm).
func headNorm(x, w []float32, eps float32) {
	d := len(w)
	for i := 0; i+d <= len(x); i += d {
		rmsNorm(x[i:i+d], x[i:i+d], w, eps)
	}
}
