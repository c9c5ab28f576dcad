package kvcache

import "log/slog"

// LayerUsage is one layer's memory: its current Policy, the Tokens it holds,
// its element Type, the Capacity in token slots allocated, and Bytes = Capacity × the layer's slot
// size ([Type.SlotBytes]: keys, values, scales and the position).
type LayerUsage struct {
	Policy   Policy
	Type     Type
	Tokens   int
	Capacity int
	Bytes    int64
}

// LogValue implements slog.LogValuer: policy, tokens, capacity, bytes.
func (u LayerUsage) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("policy", u.Policy.String()),
		slog.String("type", u.Type.String()),
		slog.Int("tokens", u.Tokens),
		slog.Int("capacity", u.Capacity),
		slog.Int64("bytes", u.Bytes),
	)
}

// Usage is the cache's memory: one LayerUsage per layer plus the total Tokens
// (summed over layers, i.e. token-layers) and total Bytes.
type Usage struct {
	Layers []LayerUsage
	Tokens int64
	Bytes  int64
	// DataBytes is the bytes of keys, values and scales of the tokens held (each layer's tokens
	// × its slot size less the 4-byte position): what one attention pass over the whole cache
	// reads.
	DataBytes int64
}

// LogValue implements slog.LogValuer: total tokens and bytes, the number of
// full and streaming layers and the bytes held by each kind (per-layer detail
// is left out to keep log lines short).
func (u Usage) LogValue() slog.Value {
	var nFull, nStream int
	var bFull, bStream int64
	for _, l := range u.Layers {
		if l.Policy.IsStreaming() {
			nStream++
			bStream += l.Bytes
		} else {
			nFull++
			bFull += l.Bytes
		}
	}
	return slog.GroupValue(
		slog.Int64("tokens", u.Tokens),
		slog.Int64("bytes", u.Bytes),
		slog.Int64("data_bytes", u.DataBytes),
		slog.Int("full_layers", nFull),
		slog.Int64("full_bytes", bFull),
		slog.Int("streaming_layers", nStream),
		slog.Int64("streaming_bytes", bStream),
	)
}

// Usage reports the memory held now. Capacity is the number of allocated token
// slots: full layers count every allocated block (blocks × BlockTokens, also
// blocks kept for reuse by Reset), streaming layers Sink+Window once allocated.
// It allocates only the returned Layers slice.
func (c *Cache) Usage() Usage {
	u := Usage{Layers: make([]LayerUsage, len(c.layers))}
	for i, l := range c.layers {
		lu := LayerUsage{Policy: l.Policy(), Type: l.Type(), Tokens: l.Len(), Capacity: l.Capacity(), Bytes: l.Bytes()}
		u.Layers[i] = lu
		u.Tokens += int64(lu.Tokens)
		u.Bytes += lu.Bytes
		u.DataBytes += l.DataBytes()
	}
	return u
}

// Bytes returns the total Bytes that Usage reports, without allocating (for tracking peaks on
// hot paths).
func (c *Cache) Bytes() int64 {
	var n int64
	for _, l := range c.layers {
		n += l.Bytes()
	}
	return n
}

// Estimate returns the total Bytes that Usage would report for a new cache with
// these policies and options after tokens tokens were appended to every layer (no Convert,
// no SetType, no Reset), without allocating (no allocation at all when opts is empty): a full
// layer ceil(tokens/BlockTokens) blocks, a streaming layer Sink+Window slots once tokens > 0,
// each slot [Type.SlotBytes] of its layer's type ([WithType]). It does not validate:
// tokens < 0 counts as 0, a policy with Window > 0 counts as streaming and any
// other as full, a block size <= 0 falls back to [DefaultBlockTokens] and an unknown type
// counts as F32.
func Estimate(s Shape, policies []Policy, tokens int, opts ...Option) int64 {
	bt := int64(DefaultBlockTokens)
	fullT, streamingT := F32, F32
	if len(opts) > 0 { // (buildOptions' struct escapes; skip it when there are no options)
		o := buildOptions(opts)
		bt, fullT, streamingT = int64(o.blockTokens), o.fullT, o.streamingT
	}
	if bt <= 0 {
		bt = DefaultBlockTokens
	}
	if tokens <= 0 {
		return 0
	}
	t := int64(tokens)
	fb, sb := fullT.SlotBytes(s), streamingT.SlotBytes(s)
	var n int64
	for _, p := range policies {
		switch {
		case p.IsStreaming() && streamingT == Q4:
			closed := min(int64(p.Window+Q4Block-1)/Q4Block, max(0, t-int64(p.Sink))/Q4Block)
			n += (int64(p.Sink)+Q4Block)*F32.SlotBytes(s) + closed*q4GroupBytes(s)
		case p.IsStreaming():
			n += (int64(p.Sink) + int64(p.Window)) * sb
		case fullT == Q4:
			n += Q4Block*F32.SlotBytes(s) + t/Q4Block*q4GroupBytes(s)
		default:
			n += (t + bt - 1) / bt * bt * fb
		}
	}
	return n
}
