package model

import (
	"context"
	"fmt"

	"github.com/lighttransfer/lighttransfer-go/attention"
	"github.com/lighttransfer/lighttransfer-go/kvcache"
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
	ckv                 chunkKV   // the keys one part's attention sees
}

// grow sizes b for steps of up to rows tokens in up to parts parts; chunk bounds the rows the
// MLP processes at once.
func (b *buffers) grow(d *configDims, rows, parts, chunk int) {
	if b.gate == nil {
		b.gate = make([]float32, chunk*d.inter)
		b.up = make([]float32, chunk*d.inter)
	}
	if rows > b.rows {
		b.rows = rows
		b.x = make([]float32, rows*d.h)
		b.xn = make([]float32, rows*d.h)
		b.q = make([]float32, rows*d.qd)
		b.att = make([]float32, rows*d.qd)
		b.k = make([]float32, rows*d.kvd)
		b.v = make([]float32, rows*d.kvd)
		b.lse = make([]float32, rows*d.heads)
		b.pos = make([]int32, rows)
	}
	if parts > b.parts {
		b.parts = parts
		b.lastX = make([]float32, parts*d.h)
		b.lastLogits = make([]float32, parts*d.vocab)
	}
}

// chunkKV presents a layer's cache followed by the span's own keys and values as one
// attention.QKV, so a span attends to earlier tokens (in the layer's element type) and to
// itself (in float32) before it is appended. A Test-mode selecting prefill therefore measures
// its lazy ratios on full-precision keys whatever the cache's type.
type chunkKV struct {
	layer kvcache.Layer
	k, v  []float32
	pos   []int32
}

var _ attention.QKV = (*chunkKV)(nil)

func (c *chunkKV) NumSegments() int { return c.layer.NumSegments() + 1 }

func (c *chunkKV) Segment(i int) (k, v []float32, pos []int32) {
	if i < c.layer.NumSegments() {
		return c.layer.Segment(i)
	}
	return c.k, c.v, c.pos
}

// SegmentQ returns the layer's segments as stored (attention dequantizes them where they lie)
// and the span's own keys and values as float32.
func (c *chunkKV) SegmentQ(i int) (elem int, k, v []byte, ks, vs []float32, pos []int32) {
	if i < c.layer.NumSegments() {
		return c.layer.SegmentQ(i)
	}
	return attention.ElemF32, nil, nil, nil, nil, c.pos
}

// part is one sequence's share of a forward step: its tokens, and where its logits go. all,
// when non-nil, receives every row's logits; otherwise the last row's logits land in the
// step's lastLogits. The sequence's state (position, cache, selection) is its Session's,
// changed only through the Session's step methods.
type part struct {
	s      *Session
	tokens []int32
	all    []float32
	row    int  // first row of the part within the step
	first  bool // the session's Test-mode first forward (one span, which restart undoes)
	sel    bool // the session measures lazy ratios in this step (a long enough first forward)
	split  bool // a piece of a split selecting prefill (SplitPrefill)
}

// forward runs one step: the tokens of every part through every layer, layer by layer, with
// the dense products done once over all rows (so a batch of sequences reads the weights once)
// and attention and cache appends done per part over that part's cache layers.
//
// This is the one forward of the Llama family (llama.go): pure math over the weights, the
// step's buffers and the cache layers each session hands out, on the model's backend.
// Per-layer differences are data (a nil bias or norm is skipped; each cache layer's policy is
// its mask), not branches on the architecture.
//
// A step runs to its end, except a single part's Test-mode first forward (the selecting
// prefill): it checks ctx and Close between layers and, when stopped, restarts its session
// (Session.restart) and returns an error wrapping ctx's error or ErrClosed. On Close the step
// fails with ErrClosed before it starts.
func (m *Model) forward(ctx context.Context, parts []part, b *buffers, chunk int) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if err := m.errIfClosed(); err != nil {
		return err
	}
	cfg, d, be := &m.cfg, m.dims, m.be
	n := 0
	for i := range parts {
		pt := &parts[i]
		pt.row = n
		n += len(pt.tokens)
		pt.split = pt.s.split > 0 && !pt.s.selected
		pt.first, pt.sel = pt.s.beginStep(len(pt.tokens))
	}
	interruptible := len(parts) == 1 && parts[0].first
	b.grow(d, n, len(parts), chunk)
	h, inter := d.h, d.inter
	eps := float32(cfg.RMSNormEps)
	x, xn := b.x[:n*h], b.xn[:n*h]
	q, k, v, att := b.q[:n*d.qd], b.k[:n*d.kvd], b.v[:n*d.kvd], b.att[:n*d.qd]
	pos := b.pos[:n]
	for _, pt := range parts {
		p0 := pt.s.Pos()
		for i, t := range pt.tokens {
			r := pt.row + i
			m.embed.row(x[r*h:(r+1)*h], int(t))
			pos[r] = int32(p0 + i)
		}
	}

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
		be.rmsNorm(xn, x, l.attnNorm, eps)
		be.matMul3(xn, n, q, &l.q, k, &l.k, v, &l.v)
		if l.qBias != nil {
			be.add(q, l.qBias)
			be.add(k, l.kBias)
			be.add(v, l.vBias)
		}
		if l.qNorm != nil {
			be.rmsNorm(q, q, l.qNorm, eps)
			be.rmsNorm(k, k, l.kNorm, eps)
		}
		be.rope(q, pos, d.heads)
		be.rope(k, pos, d.kvHeads)
		for i := range parts {
			if err := m.attend(li, &parts[i], b); err != nil {
				return err
			}
		}
		be.matMul(xn, att, n, &l.o)
		be.add(x, xn)

		// MLP block, in row chunks so the intermediate buffers stay chunk-sized.
		c := len(b.gate) / inter
		for lo := 0; lo < n; lo += c {
			hi := min(lo+c, n)
			r := hi - lo
			xr, xnr := x[lo*h:hi*h], xn[lo*h:hi*h]
			be.rmsNorm(xnr, xr, l.mlpNorm, eps)
			g, u := b.gate[:r*inter], b.up[:r*inter]
			be.matMul3(xnr, r, g, &l.gate, u, &l.up, nil, nil)
			be.siluMul(g, g, u)
			be.matMul(xnr, g, r, &l.down)
			be.add(xr, xnr)
		}
	}

	// Final norm and LM head: every row of parts that asked for all logits (their last row is
	// copied from there), else each part's last row, all such rows in one product.
	V := d.vocab
	lastX := b.lastX[:len(parts)*h]
	needHead := false
	for i := range parts {
		pt := &parts[i]
		pt.s.endStep(len(pt.tokens))
		lo, hi := pt.row, pt.row+len(pt.tokens)
		if pt.all != nil {
			be.rmsNorm(xn[lo*h:hi*h], x[lo*h:hi*h], m.norm, eps)
			be.matMul(pt.all, xn[lo*h:hi*h], hi-lo, &m.lmHead)
			continue
		}
		needHead = true
		be.rmsNorm(lastX[i*h:(i+1)*h], x[(hi-1)*h:hi*h], m.norm, eps)
	}
	if needHead {
		be.matMul(b.lastLogits[:len(parts)*V], lastX, len(parts), &m.lmHead)
	}
	for i, pt := range parts {
		if pt.all != nil {
			copy(b.lastLogits[i*V:(i+1)*V], pt.all[(len(pt.tokens)-1)*V:])
		}
	}
	return nil
}

// attend runs layer li's attention for one part over its session's cache layer plus the
// part's own keys (under the layer's policy, which is its mask), then hands the keys and
// values to the session, and in a selecting step the layer's lazy ratio.
func (m *Model) attend(li int, pt *part, b *buffers) error {
	s, d := pt.s, m.dims
	lo, hi := pt.row, pt.row+len(pt.tokens)
	q, att := b.q[lo*d.qd:hi*d.qd], b.att[lo*d.qd:hi*d.qd]
	k, v := b.k[lo*d.kvd:hi*d.kvd], b.v[lo*d.kvd:hi*d.kvd]
	pos := b.pos[lo:hi]
	layer := s.layer(li)
	b.ckv = chunkKV{layer: layer, k: k, v: v, pos: pos}
	var lse []float32
	if pt.sel || pt.split {
		lse = b.lse[lo*d.heads : hi*d.heads]
	}
	m.be.attend(att, q, pos, &b.ckv, layer.Policy(), lse)
	b.ckv = chunkKV{}
	if err := s.appendKV(li, k, v, pos); err != nil {
		return err
	}
	if pt.split {
		s.tail.keep(li, d, q, lse, pos)
	}
	if !pt.sel {
		return nil
	}
	if pt.split {
		// The last piece: the ratio over the whole prompt, its keys now all in the cache.
		s.pr.bind(&s.tail, d, li, s.layer(li))
		r := m.be.lazyRatioOf(&s.pr, s.split, s.ratioWindow())
		s.pr = prompt{}
		return s.observe(li, r)
	}
	return s.observe(li, m.be.lazyRatio(q, k, lse, len(pt.tokens), s.ratioWindow()))
}
