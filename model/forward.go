package model

import (
	"context"
	"fmt"

	"github.com/lighttransfer/lighttransfer-go/attention"
	"github.com/lighttransfer/lighttransfer-go/kvcache"
	"github.com/lighttransfer/lighttransfer-go/layerselect"
)

// grow sizes the session's activation buffers for spans of n tokens. Buffers only grow, so a
// session allocates once for its largest span.
func (s *Session) grow(n int) {
	b := &s.buf
	cfg := s.m.cfg
	h, qd, kvd := cfg.HiddenSize, cfg.NumHeads*cfg.HeadDim, cfg.NumKVHeads*cfg.HeadDim
	if b.logits == nil {
		b.logits = make([]float32, cfg.VocabSize)
		b.tmp = make([]float32, h)
		c := min(s.chunk, s.maxCtx)
		b.gate = make([]float32, c*cfg.IntermediateSize)
		b.up = make([]float32, c*cfg.IntermediateSize)
	}
	if n <= b.rows {
		return
	}
	b.rows = n
	b.x = make([]float32, n*h)
	b.xn = make([]float32, n*h)
	b.q = make([]float32, n*qd)
	b.att = make([]float32, n*qd)
	b.k = make([]float32, n*kvd)
	b.v = make([]float32, n*kvd)
	b.lse = make([]float32, n*cfg.NumHeads)
	b.pos = make([]int32, n)
}

// forwardSpan runs tokens (at positions s.pos…) through every layer, layer by layer, and
// appends their keys and values to the cache. With selecting set it also measures each
// layer's lazy ratio and truncates the layers Test mode makes lazy as soon as they are chosen.
// logits, when non-nil, receives every row's logits; with last set, the last row's logits go
// to s.buf.logits.
//
// This is the one forward function of the Llama family (Llama, Mistral, Qwen2 with q/k/v
// bias, Qwen3 with q/k RMSNorm): per-layer differences are data (weights present or not, the
// layer's attention mask), not branches on the architecture.
func (s *Session) forwardSpan(ctx context.Context, tokens []int32, selecting bool, logits []float32, last bool) error {
	m, cfg := s.m, s.m.cfg
	n := len(tokens)
	s.grow(n)
	b := &s.buf
	h, inter := cfg.HiddenSize, cfg.IntermediateSize
	H, KV, D := cfg.NumHeads, cfg.NumKVHeads, cfg.HeadDim
	qd, kvd := H*D, KV*D
	eps := float32(cfg.RMSNormEps)
	x, xn := b.x[:n*h], b.xn[:n*h]
	q, k, v, att := b.q[:n*qd], b.k[:n*kvd], b.v[:n*kvd], b.att[:n*qd]
	pos := b.pos[:n]
	for i, t := range tokens {
		m.embed.row(x[i*h:(i+1)*h], int(t))
		pos[i] = int32(s.pos + i)
	}
	canSelect := selecting && n > s.sink+s.window && n >= s.last
	if canSelect && s.ratios == nil {
		s.ratios = make([]float64, cfg.NumLayers)
	}
	p := m.attn
	p.Threads = m.threads

	for li := range m.layers {
		if err := ctx.Err(); err != nil {
			s.err = fmt.Errorf("model: session interrupted in layer %d of a forward: %w", li, err)
			return err
		}
		l := &m.layers[li]

		// Attention block.
		for i := 0; i < n; i++ {
			rmsNorm(xn[i*h:(i+1)*h], x[i*h:(i+1)*h], l.attnNorm, eps)
		}
		s.d.matmul(q, xn, n, &l.q)
		s.d.matmul(k, xn, n, &l.k)
		s.d.matmul(v, xn, n, &l.v)
		addBias(q, l.qBias)
		addBias(k, l.kBias)
		addBias(v, l.vBias)
		if l.qNorm != nil {
			headNorm(q, l.qNorm, eps)
			headNorm(k, l.kNorm, eps)
		}
		m.rope.Apply(q, pos, H, D)
		m.rope.Apply(k, pos, KV, D)

		s.ckv = chunkKV{view: s.cache.View(li), k: k, v: v, pos: pos}
		var lse []float32
		if canSelect {
			lse = b.lse[:n*H]
		}
		attention.Attend(att, q, pos, &s.ckv, s.masks[li], p, lse)
		if err := s.cache.Append(li, k, v, pos); err != nil {
			s.err = fmt.Errorf("model: layer %d: %w", li, err)
			return s.err
		}
		s.peakKV = max(s.peakKV, s.cache.Bytes())
		if canSelect {
			r := layerselect.LazyRatio(q, k, lse, n, layerselect.Window{Sink: s.sink, Recent: s.window, Last: s.last},
				layerselect.Heads{Heads: H, KVHeads: KV, HeadDim: D, Scale: p.Scale})
			s.ratios[li] = r
			for _, j := range s.online.Observe(li, r) {
				if err := s.cache.Convert(j, kvcache.Streaming(s.sink, s.window)); err != nil {
					s.err = fmt.Errorf("model: truncating layer %d: %w", j, err)
					return s.err
				}
				s.masks[j] = attention.Mask{Sink: s.sink, Window: s.window}
			}
		}
		s.d.matmul(xn, att, n, &l.o)
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
			s.d.matmul(g, xnr, r, &l.gate)
			s.d.matmul(u, xnr, r, &l.up)
			siluMul(g, g, u)
			s.d.matmul(xnr, g, r, &l.down)
			addTo(xr, xnr)
		}
	}
	if canSelect {
		s.lazy = s.online.Lazy()
	}
	s.pos += n

	// Final norm and LM head: every row when asked for, else only the last.
	if logits != nil {
		for i := 0; i < n; i++ {
			rmsNorm(xn[i*h:(i+1)*h], x[i*h:(i+1)*h], m.norm, eps)
		}
		s.d.matmul(logits, xn, n, &m.lmHead)
		if last {
			copy(b.logits, logits[(n-1)*cfg.VocabSize:])
		}
	} else if last {
		rmsNorm(b.tmp, x[(n-1)*h:n*h], m.norm, eps)
		s.d.matmul(b.logits, b.tmp, 1, &m.lmHead)
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
