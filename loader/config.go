package loader

import (
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
)

// Config is a model's config.json, with Hugging Face's class defaults
// filled in for absent keys.
type Config struct {
	// ModelType is "llama", "mistral", "qwen2" or "qwen3". A config with
	// model_type "qwen2littrans" (QwQ-32B-LightTransfer) reads as "qwen2".
	ModelType string

	HiddenSize       int // hidden_size
	IntermediateSize int // intermediate_size (MLP width)
	NumLayers        int // num_hidden_layers
	NumHeads         int // num_attention_heads (query heads)
	NumKVHeads       int // num_key_value_heads; default NumHeads
	HeadDim          int // head_dim; default HiddenSize/NumHeads (qwen3: 128)
	VocabSize        int // vocab_size
	MaxPositions     int // max_position_embeddings

	RMSNormEps float64 // rms_norm_eps; default 1e-6
	RopeTheta  float64 // rope_theta; default 10000

	// RopeScaling is the rope_scaling entry; nil means none (or rope_type "default").
	RopeScaling *RopeScaling

	TieEmbeddings bool // tie_word_embeddings: lm_head shares model.embed_tokens.weight; default false
	AttentionBias bool // q/k/v projections have biases: always for qwen2, attention_bias for llama/qwen3
	QKNorm        bool // per-head RMSNorm of q and k before RoPE (qwen3)

	HiddenAct string // hidden_act; only "silu" is supported

	BOS []int32 // bos_token_id (number or list); llama/mistral default [1]
	EOS []int32 // eos_token_id (number or list); llama/mistral default [2]

	// LightTransfer keys (docs/method.md). LazyLayers, sorted, are the layers
	// that use streaming attention in fixed mode: from lazy_layers and/or the
	// "streaming_attention" entries of layer_types (both present: they must
	// agree). StreamingSink and StreamingWindow (streaming_sink,
	// streaming_window) default to 4 and 1020; for qwen2littrans with 64
	// layers and no lazy layers named, LazyLayers is QwQ-32B-LightTransfer's
	// list with sink 129, window 1025. LayerTypes is layer_types as given
	// (nil if absent); its entries are "full_attention" or "streaming_attention".
	LazyLayers      []int
	StreamingSink   int
	StreamingWindow int
	LayerTypes      []string
}

// RopeScaling is a config's rope_scaling: Type "linear" (Factor), "llama3"
// (Factor, LowFreqFactor, HighFreqFactor, OriginalMaxPositions) or "yarn"
// (Factor; OriginalMaxPositions defaults to max_position_embeddings,
// BetaFast to 32, BetaSlow to 1, MScale and MScaleAllDim to 0 (absent), and
// AttentionFactor to the YaRN mscale 0.1·ln(Factor)+1 or, when MScale and
// MScaleAllDim are both set, the ratio of the two mscales).
type RopeScaling struct {
	Type                 string
	Factor               float64
	LowFreqFactor        float64
	HighFreqFactor       float64
	OriginalMaxPositions int
	BetaFast, BetaSlow   float64
	MScale, MScaleAllDim float64
	AttentionFactor      float64
}

// Limits Validate enforces so that sizes derived from a config cannot
// overflow or ask for absurd allocations.
const (
	maxDim    = 1 << 24
	maxLayers = 1 << 16
	maxPos    = 1 << 30
	minF32    = 1e-30 // smallest positive value accepted where float32 must stay normal
)

// qwqLazyLayers is QwQ-32B-LightTransfer's list of lazy layers (docs/method.md).
func qwqLazyLayers() []int {
	var l []int
	for i := 5; i <= 24; i++ {
		l = append(l, i)
	}
	return append(l, 26, 27, 28, 30, 31, 32, 33, 35, 37, 38, 43, 51)
}

type archDefaults struct {
	vocab, hidden, inter, layers, heads, maxPos int
	headDim                                     int // 0: hidden/heads
	bias, qkNorm, biasFromKey                   bool
	bos, eos                                    []int32
}

// Hugging Face configuration class defaults (LlamaConfig, MistralConfig,
// Qwen2Config, Qwen3Config).
var defaults = map[string]archDefaults{
	"llama":   {32000, 4096, 11008, 32, 32, 2048, 0, false, false, true, []int32{1}, []int32{2}},
	"mistral": {32000, 4096, 14336, 32, 32, 4096 * 32, 0, false, false, false, []int32{1}, []int32{2}},
	"qwen2":   {151936, 4096, 22016, 32, 32, 32768, 0, true, false, false, nil, nil},
	"qwen3":   {151936, 4096, 22016, 32, 32, 32768, 128, false, true, true, nil, nil},
}

// ParseConfig reads a Hugging Face config.json for llama, mistral, qwen2
// (also "qwen2littrans") or qwen3, fills Hugging Face's class defaults for
// absent keys (the file always wins), and validates the result. It refuses
// with ErrUnsupported, naming the key: an unknown model_type, a sliding
// window in use (mistral sliding_window below max_position_embeddings —
// absent means the class default 4096 —, qwen use_sliding_window true,
// "sliding_attention" in layer_types), rope types other than linear, llama3
// and yarn, hidden_act other than silu, llama mlp_bias, and a
// partial_rotary_factor other than 1. Malformed values give ErrFormat.
func ParseConfig(r io.Reader) (Config, error) {
	o, err := readObject(r, "config")
	if err != nil {
		return Config{}, err
	}
	c, err := parseConfig(o)
	if err != nil {
		return Config{}, err
	}
	return c, c.Validate()
}

func parseConfig(o object) (Config, error) {
	var c Config
	mt, err := o.str("model_type", "")
	if err != nil {
		return c, err
	}
	if mt == "" {
		return c, &FormatError{Key: "model_type", Msg: "missing model_type", Err: ErrNotFound}
	}
	littrans := mt == "qwen2littrans"
	if littrans {
		mt = "qwen2"
	}
	d, ok := defaults[mt]
	if !ok {
		return c, &FormatError{Key: "model_type", Msg: fmt.Sprintf("model_type %q is not one of llama, mistral, qwen2, qwen2littrans, qwen3", mt), Err: ErrUnsupported}
	}
	c.ModelType = mt
	ints := []struct {
		dst *int
		key string
		def int
	}{
		{&c.VocabSize, "vocab_size", d.vocab},
		{&c.HiddenSize, "hidden_size", d.hidden},
		{&c.IntermediateSize, "intermediate_size", d.inter},
		{&c.NumLayers, "num_hidden_layers", d.layers},
		{&c.NumHeads, "num_attention_heads", d.heads},
		{&c.MaxPositions, "max_position_embeddings", d.maxPos},
	}
	for _, f := range ints {
		if *f.dst, err = o.integer(f.key, f.def); err != nil {
			return c, err
		}
	}
	if c.NumKVHeads, err = o.integer("num_key_value_heads", c.NumHeads); err != nil {
		return c, err
	}
	defHead := d.headDim
	if defHead == 0 && c.NumHeads > 0 {
		if c.HiddenSize%c.NumHeads != 0 && !o.has("head_dim") {
			return c, &FormatError{Key: "hidden_size", Err: ErrFormat,
				Msg: fmt.Sprintf("hidden_size %d is not divisible by num_attention_heads %d and head_dim is not given", c.HiddenSize, c.NumHeads)}
		}
		defHead = c.HiddenSize / c.NumHeads
	}
	if c.HeadDim, err = o.integer("head_dim", defHead); err != nil {
		return c, err
	}
	if c.RMSNormEps, err = o.float("rms_norm_eps", 1e-6); err != nil {
		return c, err
	}
	if c.RopeTheta, err = o.float("rope_theta", 10000); err != nil {
		return c, err
	}
	if c.TieEmbeddings, err = o.boolean("tie_word_embeddings", false); err != nil {
		return c, err
	}
	c.AttentionBias = d.bias
	if d.biasFromKey {
		if c.AttentionBias, err = o.boolean("attention_bias", false); err != nil {
			return c, err
		}
	}
	c.QKNorm = d.qkNorm
	if c.HiddenAct, err = o.str("hidden_act", "silu"); err != nil {
		return c, err
	}
	if c.HiddenAct != "silu" {
		return c, &FormatError{Key: "hidden_act", Msg: fmt.Sprintf("hidden_act %q is not supported (only silu)", c.HiddenAct), Err: ErrUnsupported}
	}
	if mt == "llama" {
		mb, err := o.boolean("mlp_bias", false)
		if err != nil {
			return c, err
		}
		if mb {
			return c, &FormatError{Key: "mlp_bias", Msg: "MLP biases are not supported", Err: ErrUnsupported}
		}
	}
	if prf, err := o.float("partial_rotary_factor", 1); err != nil {
		return c, err
	} else if prf != 1 {
		return c, &FormatError{Key: "partial_rotary_factor", Msg: fmt.Sprintf("partial_rotary_factor %v is not supported (only 1)", prf), Err: ErrUnsupported}
	}
	if c.BOS, err = o.tokenIDs("bos_token_id", d.bos); err != nil {
		return c, err
	}
	if c.EOS, err = o.tokenIDs("eos_token_id", d.eos); err != nil {
		return c, err
	}
	c.BOS = append([]int32(nil), c.BOS...)
	c.EOS = append([]int32(nil), c.EOS...)

	// Sliding windows.
	switch mt {
	case "mistral":
		sw, err := o.integer("sliding_window", 4096)
		if err != nil {
			return c, err
		}
		if _, present := o.m["sliding_window"]; present && !o.has("sliding_window") {
			sw = 0 // explicit null: no sliding window
		}
		if sw > 0 && sw < c.MaxPositions {
			return c, &FormatError{Key: "sliding_window", Err: ErrUnsupported,
				Msg: fmt.Sprintf("sliding window attention (window %d < max_position_embeddings %d) is not supported", sw, c.MaxPositions)}
		}
	case "qwen2", "qwen3":
		use, err := o.boolean("use_sliding_window", false)
		if err != nil {
			return c, err
		}
		if use {
			return c, &FormatError{Key: "use_sliding_window", Msg: "sliding window attention is not supported", Err: ErrUnsupported}
		}
	}

	if err := parseRope(o, &c); err != nil {
		return c, err
	}
	if err := parseLightTransfer(o, &c, littrans); err != nil {
		return c, err
	}
	return c, nil
}

func parseRope(o object, c *Config) error {
	rs, ok, err := o.sub("rope_scaling")
	if err != nil {
		return err
	}
	if !ok {
		// transformers v5 moved rope settings to rope_parameters.
		if rs, ok, err = o.sub("rope_parameters"); err != nil {
			return err
		}
		if ok && !o.has("rope_theta") {
			if c.RopeTheta, err = rs.float("rope_theta", c.RopeTheta); err != nil {
				return err
			}
		}
	}
	if !ok {
		return nil
	}
	typ, err := rs.str("rope_type", "")
	if err != nil {
		return err
	}
	typeKey := "rope_type"
	if typ == "" {
		typeKey = "type"
		if typ, err = rs.str("type", ""); err != nil {
			return err
		}
	}
	if typ == "" || typ == "default" {
		return nil
	}
	s := &RopeScaling{Type: typ}
	need := func(dst *float64, key string) error {
		if !rs.has(key) {
			return &FormatError{Key: rs.prefix + key, Msg: fmt.Sprintf("rope type %q needs %s", typ, key), Err: ErrFormat}
		}
		v, err := rs.float(key, 0)
		*dst = v
		return err
	}
	switch typ {
	case "linear":
		if err := need(&s.Factor, "factor"); err != nil {
			return err
		}
	case "llama3":
		for _, f := range []struct {
			dst *float64
			key string
		}{{&s.Factor, "factor"}, {&s.LowFreqFactor, "low_freq_factor"}, {&s.HighFreqFactor, "high_freq_factor"}} {
			if err := need(f.dst, f.key); err != nil {
				return err
			}
		}
		if !rs.has("original_max_position_embeddings") {
			return &FormatError{Key: rs.prefix + "original_max_position_embeddings", Msg: "rope type \"llama3\" needs original_max_position_embeddings", Err: ErrFormat}
		}
		if s.OriginalMaxPositions, err = rs.integer("original_max_position_embeddings", 0); err != nil {
			return err
		}
	case "yarn":
		if err := need(&s.Factor, "factor"); err != nil {
			return err
		}
		if s.OriginalMaxPositions, err = rs.integer("original_max_position_embeddings", c.MaxPositions); err != nil {
			return err
		}
		if s.BetaFast, err = rs.float("beta_fast", 32); err != nil {
			return err
		}
		if s.BetaSlow, err = rs.float("beta_slow", 1); err != nil {
			return err
		}
		if s.MScale, err = rs.float("mscale", 0); err != nil {
			return err
		}
		if s.MScaleAllDim, err = rs.float("mscale_all_dim", 0); err != nil {
			return err
		}
		if s.AttentionFactor, err = rs.float("attention_factor", 0); err != nil {
			return err
		}
		if s.AttentionFactor == 0 {
			s.AttentionFactor = s.defaultAttentionFactor()
		}
		trunc, err := rs.boolean("truncate", true)
		if err != nil {
			return err
		}
		if !trunc {
			return &FormatError{Key: rs.prefix + "truncate", Msg: "yarn without truncation is not supported", Err: ErrUnsupported}
		}
	default:
		return &FormatError{Key: rs.prefix + typeKey, Msg: fmt.Sprintf("rope type %q is not supported (only linear, llama3, yarn)", typ), Err: ErrUnsupported}
	}
	c.RopeScaling = s
	return nil
}

func parseLightTransfer(o object, c *Config, littrans bool) error {
	lazy, haveLazy, err := o.intList("lazy_layers")
	if err != nil {
		return err
	}
	types, haveTypes, err := o.strList("layer_types")
	if err != nil {
		return err
	}
	var fromTypes []int
	for i, t := range types {
		switch t {
		case "full_attention":
		case "streaming_attention":
			fromTypes = append(fromTypes, i)
		case "sliding_attention":
			return &FormatError{Key: "layer_types", Err: ErrUnsupported,
				Msg: fmt.Sprintf("layer %d: sliding window attention (\"sliding_attention\") is not supported", i)}
		default:
			return &FormatError{Key: "layer_types", Err: ErrUnsupported,
				Msg: fmt.Sprintf("layer %d: layer type %q is not supported (want full_attention or streaming_attention)", i, t)}
		}
	}
	if haveTypes {
		c.LayerTypes = types
	}
	sink, window := 4, 1020
	switch {
	case haveLazy:
		c.LazyLayers = append([]int(nil), lazy...)
		sort.Ints(c.LazyLayers)
		if haveTypes && !slices.Equal(c.LazyLayers, fromTypes) {
			return &FormatError{Key: "layer_types", Err: ErrFormat,
				Msg: fmt.Sprintf("streaming_attention layers %v disagree with lazy_layers %v", fromTypes, c.LazyLayers)}
		}
	case haveTypes:
		c.LazyLayers = fromTypes
	case littrans && c.NumLayers == 64:
		c.LazyLayers = qwqLazyLayers()
		sink, window = 129, 1025
	}
	if c.StreamingSink, err = o.integer("streaming_sink", sink); err != nil {
		return err
	}
	if c.StreamingWindow, err = o.integer("streaming_window", window); err != nil {
		return err
	}
	return nil
}

// Validate checks that c is internally consistent and within this package's
// limits: known ModelType, positive sizes (dimensions up to 2^24, layers up to
// 2^16, positions up to 2^30), NumHeads a multiple of NumKVHeads, an even
// HeadDim, positive finite RMSNormEps and RopeTheta, silu activation, sane
// rope scaling, lazy layers in range without repeats, StreamingSink >= 0,
// StreamingWindow > 0 when there are lazy layers, LayerTypes of length
// NumLayers that agrees with LazyLayers. Errors wrap ErrFormat or
// ErrUnsupported and name the key.
func (c Config) Validate() error {
	bad := func(key, format string, args ...any) error {
		return &FormatError{Key: key, Msg: fmt.Sprintf(format, args...), Err: ErrFormat}
	}
	if _, ok := defaults[c.ModelType]; !ok {
		return &FormatError{Key: "model_type", Msg: fmt.Sprintf("model_type %q is not one of llama, mistral, qwen2, qwen3", c.ModelType), Err: ErrUnsupported}
	}
	for _, f := range []struct {
		key   string
		v, hi int
	}{
		{"hidden_size", c.HiddenSize, maxDim},
		{"intermediate_size", c.IntermediateSize, maxDim},
		{"num_hidden_layers", c.NumLayers, maxLayers},
		{"num_attention_heads", c.NumHeads, maxLayers},
		{"num_key_value_heads", c.NumKVHeads, maxLayers},
		{"head_dim", c.HeadDim, maxDim},
		{"vocab_size", c.VocabSize, maxDim},
		{"max_position_embeddings", c.MaxPositions, maxPos},
	} {
		if f.v <= 0 || f.v > f.hi {
			return bad(f.key, "%s %d out of range [1, %d]", f.key, f.v, f.hi)
		}
	}
	if c.NumHeads%c.NumKVHeads != 0 {
		return bad("num_key_value_heads", "num_attention_heads %d is not a multiple of num_key_value_heads %d", c.NumHeads, c.NumKVHeads)
	}
	if c.HeadDim%2 != 0 {
		return bad("head_dim", "head_dim %d is odd (RoPE needs pairs)", c.HeadDim)
	}
	if int64(c.NumHeads)*int64(c.HeadDim) > maxDim {
		return bad("head_dim", "num_attention_heads × head_dim = %d exceeds %d", int64(c.NumHeads)*int64(c.HeadDim), maxDim)
	}
	if !(c.RMSNormEps > 0) || math.IsInf(c.RMSNormEps, 0) {
		return bad("rms_norm_eps", "rms_norm_eps %v must be positive and finite", c.RMSNormEps)
	}
	if !(c.RopeTheta >= minF32) || c.RopeTheta > math.MaxFloat32 {
		return bad("rope_theta", "rope_theta %v must be positive and finite in float32", c.RopeTheta)
	}
	if c.HiddenAct != "silu" {
		return &FormatError{Key: "hidden_act", Msg: fmt.Sprintf("hidden_act %q is not supported (only silu)", c.HiddenAct), Err: ErrUnsupported}
	}
	if err := c.validateRope(); err != nil {
		return err
	}
	seen := make(map[int]bool, len(c.LazyLayers))
	for _, l := range c.LazyLayers {
		if l < 0 || l >= c.NumLayers {
			return bad("lazy_layers", "lazy layer %d out of range [0, %d)", l, c.NumLayers)
		}
		if seen[l] {
			return bad("lazy_layers", "lazy layer %d listed twice", l)
		}
		seen[l] = true
	}
	if c.StreamingSink < 0 || c.StreamingSink > maxPos {
		return bad("streaming_sink", "streaming_sink %d out of range [0, %d]", c.StreamingSink, maxPos)
	}
	if c.StreamingWindow < 0 || c.StreamingWindow > maxPos || (len(c.LazyLayers) > 0 && c.StreamingWindow == 0) {
		return bad("streaming_window", "streaming_window %d out of range [1, %d]", c.StreamingWindow, maxPos)
	}
	if c.LayerTypes != nil {
		if len(c.LayerTypes) != c.NumLayers {
			return bad("layer_types", "layer_types has %d entries, num_hidden_layers is %d", len(c.LayerTypes), c.NumLayers)
		}
		for i, t := range c.LayerTypes {
			lazy := t == "streaming_attention"
			if !lazy && t != "full_attention" {
				return &FormatError{Key: "layer_types", Msg: fmt.Sprintf("layer %d: layer type %q is not supported", i, t), Err: ErrUnsupported}
			}
			if lazy != seen[i] {
				return bad("layer_types", "layer %d is %q but lazy_layers %v disagree", i, t, c.LazyLayers)
			}
		}
	}
	return nil
}

func (c Config) validateRope() error {
	s := c.RopeScaling
	if s == nil {
		return nil
	}
	bad := func(key, format string, args ...any) error {
		return &FormatError{Key: "rope_scaling." + key, Msg: fmt.Sprintf(format, args...), Err: ErrFormat}
	}
	finite := func(f float64) bool { return !math.IsInf(f, 0) && !math.IsNaN(f) }
	if !(s.Factor >= 1e-6) || s.Factor > 1e6 {
		return bad("factor", "factor %v out of range [1e-6, 1e6]", s.Factor)
	}
	switch s.Type {
	case "linear":
	case "llama3":
		if !(s.LowFreqFactor >= minF32) || s.LowFreqFactor > math.MaxFloat32 {
			return bad("low_freq_factor", "low_freq_factor %v must be positive and finite in float32", s.LowFreqFactor)
		}
		if !(float32(s.HighFreqFactor) > float32(s.LowFreqFactor)) || s.HighFreqFactor > math.MaxFloat32 ||
			float32(s.HighFreqFactor-s.LowFreqFactor) == 0 {
			return bad("high_freq_factor", "high_freq_factor %v must be finite in float32 and above low_freq_factor %v", s.HighFreqFactor, s.LowFreqFactor)
		}
		if s.OriginalMaxPositions <= 0 || s.OriginalMaxPositions > maxPos {
			return bad("original_max_position_embeddings", "original_max_position_embeddings %d out of range [1, %d]", s.OriginalMaxPositions, maxPos)
		}
	case "yarn":
		if !(c.RopeTheta > 1) {
			return &FormatError{Key: "rope_theta", Msg: fmt.Sprintf("yarn needs rope_theta > 1, got %v", c.RopeTheta), Err: ErrFormat}
		}
		if !(s.BetaFast >= minF32) || !finite(s.BetaFast) || !(s.BetaSlow >= minF32) || !finite(s.BetaSlow) {
			return bad("beta_fast", "beta_fast %v and beta_slow %v must be positive and finite", s.BetaFast, s.BetaSlow)
		}
		if s.OriginalMaxPositions <= 0 || s.OriginalMaxPositions > maxPos {
			return bad("original_max_position_embeddings", "original_max_position_embeddings %d out of range [1, %d]", s.OriginalMaxPositions, maxPos)
		}
		if !finite(s.MScale) || !finite(s.MScaleAllDim) || s.AttentionFactor < 0 || s.AttentionFactor > math.MaxFloat32 ||
			!finite(s.defaultAttentionFactor()) {
			return bad("attention_factor", "mscale %v, mscale_all_dim %v, attention_factor %v must be finite (attention_factor >= 0)", s.MScale, s.MScaleAllDim, s.AttentionFactor)
		}
	default:
		return &FormatError{Key: "rope_scaling.rope_type", Msg: fmt.Sprintf("rope type %q is not supported (only linear, llama3, yarn)", s.Type), Err: ErrUnsupported}
	}
	return nil
}
