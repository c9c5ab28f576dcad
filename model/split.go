package model

import (
	"fmt"
	"slices"
	"sort"

	"github.com/lighttransfer/lighttransfer-go/kvcache"
	"github.com/lighttransfer/lighttransfer-go/layerselect"
)

// SplitBoundary is the multiple of tokens at which the pieces of a split selecting prefill
// must end (all but the last; see SplitPrefill): the KV cache's block (kvcache
// DefaultBlockTokens), a multiple of attention's 64-key tiles.
const SplitBoundary = kvcache.DefaultBlockTokens

// SplitPrefill lets a Test-mode session take its selecting prefill, the next n tokens (its
// prompt), in several Batch.Run steps instead of one span, so a serving loop can prefill a
// long prompt a piece per step beside other sequences' decode tokens. The pieces are given
// through Batch.Run (Next refuses them): every piece but the last ends at a position that is
// a multiple of SplitBoundary, and together they hold n tokens. The lazy ratios are measured
// and the layers chosen on the last piece, over the whole prompt's rows.
//
// The result is bit for bit the one-span selecting prefill of Session.Next: the same logits
// (of the last piece, and after it), lazy layers, ratios and caches. That holds because every
// query's attention visits the same keys in the same tiles and order (pieces start on cache
// blocks; the cache returns float32 keys exactly as appended), and the ratios read the same
// keys, queries and log-sum-exps, kept from the earlier pieces. The one difference is
// memory: the one-span prefill truncates each chosen layer as soon as it is chosen, while a
// split one holds the full-attention cache of every layer (kvcache.Estimate with all layers
// full, Model.EstimateKV) until its last piece, so PeakKVBytes is that worst case.
//
// It is an error wrapping ErrOption unless the session is in Test mode before its first
// forward, 1 <= n <= its context, its layers store float32 keys (WithKV types other than
// kvcache.F32 are read back rounded, so earlier pieces' keys would differ from the one-span
// prefill's float32 ones; run such prompts as one span) and no layer was made streaming by
// MakeStreaming.
func (s *Session) SplitPrefill(n int) error {
	if s.err != nil {
		return s.err
	}
	if err := s.m.errIfClosed(); err != nil {
		return err
	}
	switch {
	case s.mode != ModeTest:
		return fmt.Errorf("%w: SplitPrefill applies to Test mode, not %v mode", ErrOption, s.mode)
	case s.selected || s.pos > 0:
		return fmt.Errorf("%w: SplitPrefill after the session's selecting prefill (position %d)", ErrOption, s.pos)
	case s.split > 0:
		return fmt.Errorf("%w: the selecting prefill is already split (%d tokens)", ErrOption, s.split)
	case n < 1 || n > s.maxCtx:
		return fmt.Errorf("%w: split prefill of %d tokens outside [1, %d]", ErrOption, n, s.maxCtx)
	case s.kvFull != kvcache.F32:
		return fmt.Errorf("%w: a split selecting prefill is exact only with float32 KV, not %v (run the prompt as one span)", ErrOption, s.kvFull)
	case len(s.Lazy()) > 0:
		return fmt.Errorf("%w: a split selecting prefill needs every layer full; layers %v are streaming", ErrOption, s.Lazy())
	}
	s.split = n
	if n > s.sink+s.window && n >= s.last {
		d := s.m.dims
		L := s.m.cfg.NumLayers
		s.tail = splitTail{first: n - min(s.last, n), rows: min(s.last, n),
			q: make([]float32, L*min(s.last, n)*d.qd), lse: make([]float32, L*min(s.last, n)*d.heads)}
	}
	return nil
}

// splitTail keeps, per layer, the post-RoPE q and the log-sum-exp of the last rows queries
// of a split selecting prefill (prompt positions first..first+rows−1), which its last piece's
// lazy ratios read. q is nil when the prefill selects nothing.
type splitTail struct {
	first, rows int
	q, lse      []float32 // [layers][rows][q width], [layers][rows][heads]
	starts      []int     // scratch: first position of each cache segment (see prompt)
}

func (t splitTail) clone() splitTail {
	t.q, t.lse, t.starts = slices.Clone(t.q), slices.Clone(t.lse), nil
	return t
}

// keep copies the rows of one piece (positions pos, q [len(pos)][qd], lse [len(pos)][heads])
// that are among the last queries, for layer li.
func (t *splitTail) keep(li int, d *configDims, q, lse []float32, pos []int32) {
	if t.q == nil {
		return
	}
	for i, p := range pos {
		r := int(p) - t.first
		if r < 0 || r >= t.rows {
			continue
		}
		copy(t.q[(li*t.rows+r)*d.qd:][:d.qd], q[i*d.qd:][:d.qd])
		copy(t.lse[(li*t.rows+r)*d.heads:][:d.heads], lse[i*d.heads:][:d.heads])
	}
}

// prompt presents layer li of a split selecting prefill to layerselect: queries from the
// kept tail, keys from the layer's cache (full, float32, positions in order).
type prompt struct {
	t     *splitTail
	d     *configDims
	li    int
	layer kvcache.Layer
}

var _ layerselect.Prompt = (*prompt)(nil)

// bind readies p for layer li: it indexes the first position of each cache segment.
func (p *prompt) bind(t *splitTail, d *configDims, li int, layer kvcache.Layer) {
	*p = prompt{t: t, d: d, li: li, layer: layer}
	t.starts = t.starts[:0]
	for i := range layer.NumSegments() {
		_, _, pos := layer.Segment(i)
		t.starts = append(t.starts, int(pos[0]))
	}
}

func (p *prompt) Query(t int) (q, lse []float32) {
	r := t - p.t.first
	return p.t.q[(p.li*p.t.rows+r)*p.d.qd:][:p.d.qd], p.t.lse[(p.li*p.t.rows+r)*p.d.heads:][:p.d.heads]
}

func (p *prompt) Key(t int) []float32 {
	i := sort.SearchInts(p.t.starts, t+1) - 1
	k, _, pos := p.layer.Segment(i)
	j := t - int(pos[0])
	return k[j*p.d.kvd:][:p.d.kvd]
}
