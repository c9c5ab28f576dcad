package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
)

// fileJSON mirrors the top level of tokenizer.json.
type fileJSON struct {
	AddedTokens   []addedTokenJSON `json:"added_tokens"`
	Normalizer    json.RawMessage  `json:"normalizer"`
	PreTokenizer  json.RawMessage  `json:"pre_tokenizer"`
	PostProcessor json.RawMessage  `json:"post_processor"`
	Decoder       json.RawMessage  `json:"decoder"`
	Model         json.RawMessage  `json:"model"`
}

type addedTokenJSON struct {
	ID         *int64 `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized *bool  `json:"normalized"`
	Special    bool   `json:"special"`
}

// component is the common shape of every typed component.
type component struct {
	Type string `json:"type"`
}

func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || string(t) == "null"
}

func formatErr(where string, err error) error {
	return fmt.Errorf("%w: %s: %v", ErrFormat, where, err)
}

func unsupported(kind, typ string) error {
	return fmt.Errorf("%w: %s type %q", ErrUnsupported, kind, typ)
}

// maxVocab bounds ids so that a malformed file cannot make us allocate
// unbounded memory.
const maxVocab = 1 << 24

func parseTokenizer(b []byte) (*Tokenizer, error) {
	var f fileJSON
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, formatErr("tokenizer.json", err)
	}
	t := &Tokenizer{}
	var err error
	if isNull(f.Model) {
		return nil, fmt.Errorf("%w: tokenizer.json: no model", ErrFormat)
	}
	if t.model, err = parseBPE(f.Model); err != nil {
		return nil, err
	}
	if !isNull(f.Normalizer) {
		if t.normalizer, err = parseNormalizer(f.Normalizer); err != nil {
			return nil, err
		}
	}
	if !isNull(f.PreTokenizer) {
		if t.pretok, err = parsePreTokenizer(f.PreTokenizer, t.pretok); err != nil {
			return nil, err
		}
	}
	if n := len(t.pretok); n > 0 && t.model.prefix == "" && t.model.suffix == "" {
		if bl, ok := t.pretok[n-1].(*byteLevelPre); ok {
			bl.raw = true
			t.model.enableRawBytes()
		}
	}
	if !isNull(f.Decoder) {
		if t.decoder, err = parseDecoder(f.Decoder, t.decoder); err != nil {
			return nil, err
		}
	}

	// Vocabulary: model tokens, then added tokens (which may reuse model ids).
	t.vocab = make(map[string]int32, len(t.model.vocab)+len(f.AddedTokens))
	size := len(t.model.tokens)
	for _, a := range f.AddedTokens {
		if a.ID == nil || *a.ID < 0 || *a.ID >= maxVocab {
			return nil, fmt.Errorf("%w: tokenizer.json: added token %q has a missing or out-of-range id", ErrFormat, a.Content)
		}
		if int(*a.ID) >= size {
			size = int(*a.ID) + 1
		}
	}
	t.tokens = make([]string, size)
	t.hasTok = make([]bool, size)
	t.special = make([]bool, size)
	for id, s := range t.model.tokens {
		if t.model.has[id] {
			t.tokens[id], t.hasTok[id] = s, true
			t.vocab[s] = int32(id)
		}
	}
	var toks []addedToken
	for _, a := range f.AddedTokens {
		id := int32(*a.ID)
		if a.Content == "" {
			return nil, fmt.Errorf("%w: tokenizer.json: added token %d has empty content", ErrFormat, id)
		}
		normalized := !a.Special
		if a.Normalized != nil {
			normalized = *a.Normalized
		}
		t.tokens[id], t.hasTok[id] = a.Content, true
		t.vocab[a.Content] = id
		if a.Special {
			t.special[id] = true
		}
		toks = append(toks, addedToken{id: id, content: a.Content, singleWord: a.SingleWord,
			lstrip: a.LStrip, rstrip: a.RStrip, normalized: normalized})
	}
	// Hugging Face also skips, when decoding with skip_special_tokens, any token
	// whose content equals a special added token.
	for _, a := range f.AddedTokens {
		if a.Special {
			if id, ok := t.model.vocab[a.Content]; ok {
				t.special[id] = true
			}
		}
	}
	t.added = newAddedVocab(toks, t.normalizer)

	if !isNull(f.PostProcessor) {
		if t.post, err = parsePost(f.PostProcessor, t.post, t.vocab); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// ---- BPE model ----

type bpeJSON struct {
	Type                    string            `json:"type"`
	Vocab                   map[string]int64  `json:"vocab"`
	Merges                  []json.RawMessage `json:"merges"`
	UnkToken                *string           `json:"unk_token"`
	ContinuingSubwordPrefix *string           `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string           `json:"end_of_word_suffix"`
	FuseUnk                 bool              `json:"fuse_unk"`
	ByteFallback            bool              `json:"byte_fallback"`
	IgnoreMerges            bool              `json:"ignore_merges"`
	Dropout                 *float64          `json:"dropout"`
}

func parseBPE(raw json.RawMessage) (*bpe, error) {
	var m bpeJSON
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, formatErr("model", err)
	}
	if m.Type != "BPE" && m.Type != "" {
		return nil, unsupported("model", m.Type)
	}
	if m.Type == "" && m.Vocab == nil {
		return nil, fmt.Errorf("%w: model: missing type and vocab", ErrFormat)
	}
	if m.Dropout != nil && *m.Dropout != 0 {
		return nil, fmt.Errorf("%w: model: BPE dropout %v (only 0/null is deterministic)", ErrUnsupported, *m.Dropout)
	}
	b := &bpe{
		vocab:        make(map[string]int32, len(m.Vocab)),
		fuseUnk:      m.FuseUnk,
		byteFallback: m.ByteFallback,
		ignoreMerges: m.IgnoreMerges,
		unk:          -1,
		cache:        newWordCache(),
	}
	if m.ContinuingSubwordPrefix != nil {
		b.prefix = *m.ContinuingSubwordPrefix
	}
	if m.EndOfWordSuffix != nil {
		b.suffix = *m.EndOfWordSuffix
	}
	size := 0
	for s, id := range m.Vocab {
		if id < 0 || id >= maxVocab {
			return nil, fmt.Errorf("%w: model: token %q has out-of-range id %d", ErrFormat, s, id)
		}
		if int(id) >= size {
			size = int(id) + 1
		}
	}
	b.tokens = make([]string, size)
	b.has = make([]bool, size)
	for s, id := range m.Vocab {
		b.vocab[s] = int32(id)
		if b.has[id] {
			// Two strings with one id: keep the lexically smaller for determinism.
			if s > b.tokens[id] {
				continue
			}
		}
		b.tokens[id], b.has[id] = s, true
	}
	if m.UnkToken != nil {
		id, ok := b.vocab[*m.UnkToken]
		if !ok {
			return nil, fmt.Errorf("%w: model: unk_token %q is not in the vocabulary", ErrFormat, *m.UnkToken)
		}
		b.unk = id
	}
	if b.byteFallback {
		for i := 0; i < 256; i++ {
			b.byteIDs[i] = -1
			if id, ok := b.vocab[fmt.Sprintf("<0x%02X>", i)]; ok {
				b.byteIDs[i] = id
			}
		}
	}
	b.merges = make(map[uint64]mergeVal, len(m.Merges))
	rank := 0
	for i, rm := range m.Merges {
		var a, c string
		var s string
		if err := json.Unmarshal(rm, &s); err == nil {
			if strings.HasPrefix(s, "#version") {
				continue
			}
			parts := strings.Split(s, " ")
			if len(parts) != 2 {
				return nil, fmt.Errorf("%w: model: merge %d %q is not two tokens", ErrFormat, i, s)
			}
			a, c = parts[0], parts[1]
		} else {
			var pair []string
			if err := json.Unmarshal(rm, &pair); err != nil || len(pair) != 2 {
				return nil, fmt.Errorf("%w: model: merge %d is neither \"a b\" nor [a, b]", ErrFormat, i)
			}
			a, c = pair[0], pair[1]
		}
		ida, ok := b.vocab[a]
		if !ok {
			return nil, fmt.Errorf("%w: model: merge %d: token %q not in vocabulary", ErrFormat, i, a)
		}
		idc, ok := b.vocab[c]
		if !ok {
			return nil, fmt.Errorf("%w: model: merge %d: token %q not in vocabulary", ErrFormat, i, c)
		}
		rest := c
		if b.prefix != "" {
			if !strings.HasPrefix(c, b.prefix) {
				return nil, fmt.Errorf("%w: model: merge %d: %q lacks the continuing_subword_prefix", ErrFormat, i, c)
			}
			rest = c[len(b.prefix):]
		}
		nid, ok := b.vocab[a+rest]
		if !ok {
			return nil, fmt.Errorf("%w: model: merge %d: merged token %q not in vocabulary", ErrFormat, i, a+rest)
		}
		if rank > math.MaxInt32 {
			return nil, fmt.Errorf("%w: model: too many merges", ErrFormat)
		}
		b.merges[pairKey(ida, idc)] = mergeVal{rank: int32(rank), id: nid}
		rank++
	}
	return b, nil
}

// ---- normalizers ----

type patternJSON struct {
	String *string `json:"String"`
	Regex  *string `json:"Regex"`
}

type normalizerJSON struct {
	Type        string            `json:"type"`
	Normalizers []json.RawMessage `json:"normalizers"`
	Prepend     string            `json:"prepend"`
	Pattern     patternJSON       `json:"pattern"`
	Content     string            `json:"content"`
	StripLeft   *bool             `json:"strip_left"`
	StripRight  *bool             `json:"strip_right"`
}

func parseNormalizer(raw json.RawMessage) (normalizer, error) {
	var n normalizerJSON
	if err := json.Unmarshal(raw, &n); err != nil {
		return nil, formatErr("normalizer", err)
	}
	switch n.Type {
	case "NFC", "NFD", "NFKC", "NFKD":
		return newUnicodeNorm(n.Type), nil
	case "Lowercase":
		return lowercase{}, nil
	case "StripAccents":
		return stripAccents{}, nil
	case "Strip":
		return stripNorm{left: n.StripLeft == nil || *n.StripLeft, right: n.StripRight == nil || *n.StripRight}, nil
	case "Prepend":
		return prependNorm(n.Prepend), nil
	case "Replace":
		p, err := compilePattern(n.Pattern, "normalizer Replace")
		if err != nil {
			return nil, err
		}
		return replaceNorm{pat: p, content: n.Content}, nil
	case "Sequence":
		var seq seqNorm
		for _, r := range n.Normalizers {
			if isNull(r) {
				continue
			}
			c, err := parseNormalizer(r)
			if err != nil {
				return nil, err
			}
			seq = append(seq, c)
		}
		return seq, nil
	default:
		return nil, unsupported("normalizer", n.Type)
	}
}

// ---- pre-tokenizers ----

type preTokJSON struct {
	Type             string            `json:"type"`
	PreTokenizers    []json.RawMessage `json:"pretokenizers"`
	Pattern          patternJSON       `json:"pattern"`
	Behavior         string            `json:"behavior"`
	Invert           bool              `json:"invert"`
	AddPrefixSpace   *bool             `json:"add_prefix_space"`
	UseRegex         *bool             `json:"use_regex"`
	Replacement      *string           `json:"replacement"`
	PrependScheme    *string           `json:"prepend_scheme"`
	Split            *bool             `json:"split"`
	IndividualDigits bool              `json:"individual_digits"`
}

func parsePreTokenizer(raw json.RawMessage, dst []preTokenizer) ([]preTokenizer, error) {
	var p preTokJSON
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, formatErr("pre_tokenizer", err)
	}
	switch p.Type {
	case "Sequence":
		for _, r := range p.PreTokenizers {
			if isNull(r) {
				continue
			}
			var err error
			if dst, err = parsePreTokenizer(r, dst); err != nil {
				return nil, err
			}
		}
		return dst, nil
	case "Split":
		pat, err := compilePattern(p.Pattern, "pre_tokenizer Split")
		if err != nil {
			return nil, err
		}
		beh, err := parseBehavior(p.Behavior)
		if err != nil {
			return nil, err
		}
		sp := &splitPre{pat: pat, behavior: beh, invert: p.Invert}
		if p.Pattern.Regex != nil && beh == behIsolated && !p.Invert {
			sp.fast = fastSplitter(*p.Pattern.Regex)
		}
		return append(dst, sp), nil
	case "ByteLevel":
		bl := &byteLevelPre{useRegex: p.UseRegex == nil || *p.UseRegex}
		bl.addPrefixSpace = p.AddPrefixSpace == nil || *p.AddPrefixSpace
		if bl.useRegex {
			bl.re = gpt2Pattern()
		}
		return append(dst, bl), nil
	case "Metaspace":
		ms, err := parseMetaspace(p)
		if err != nil {
			return nil, err
		}
		return append(dst, &metaspacePre{ms}), nil
	case "Digits":
		return append(dst, digitsPre{individual: p.IndividualDigits}), nil
	case "WhitespaceSplit":
		return append(dst, whitespaceSplitPre{}), nil
	default:
		return nil, unsupported("pre_tokenizer", p.Type)
	}
}

func parseBehavior(s string) (splitBehavior, error) {
	switch s {
	case "Removed":
		return behRemoved, nil
	case "Isolated":
		return behIsolated, nil
	case "MergedWithPrevious":
		return behMergedPrev, nil
	case "MergedWithNext":
		return behMergedNext, nil
	case "Contiguous":
		return behContiguous, nil
	default:
		return 0, fmt.Errorf("%w: Split behavior %q", ErrUnsupported, s)
	}
}

type metaspaceCfg struct {
	repl    rune
	replStr string
	scheme  string // "always", "first", "never"
	splitOn bool
}

func parseMetaspace(p preTokJSON) (metaspaceCfg, error) {
	m := metaspaceCfg{repl: '▁', scheme: "always", splitOn: true}
	if p.Replacement != nil {
		rs := []rune(*p.Replacement)
		if len(rs) != 1 {
			return m, fmt.Errorf("%w: Metaspace replacement %q is not one character", ErrFormat, *p.Replacement)
		}
		m.repl = rs[0]
	}
	m.replStr = string(m.repl)
	if p.PrependScheme != nil {
		switch *p.PrependScheme {
		case "always", "first", "never":
			m.scheme = *p.PrependScheme
		default:
			return m, fmt.Errorf("%w: Metaspace prepend_scheme %q", ErrUnsupported, *p.PrependScheme)
		}
	}
	if p.AddPrefixSpace != nil && !*p.AddPrefixSpace {
		if p.PrependScheme != nil && *p.PrependScheme != "never" {
			return m, fmt.Errorf("%w: Metaspace add_prefix_space=false contradicts prepend_scheme %q", ErrFormat, *p.PrependScheme)
		}
		m.scheme = "never"
	}
	if p.Split != nil {
		m.splitOn = *p.Split
	}
	return m, nil
}

// ---- post-processors ----

type postJSON struct {
	Type          string            `json:"type"`
	Processors    []json.RawMessage `json:"processors"`
	Single        []json.RawMessage `json:"single"`
	SpecialTokens map[string]struct {
		ID  string  `json:"id"`
		IDs []int64 `json:"ids"`
	} `json:"special_tokens"`
	Sep json.RawMessage `json:"sep"`
	Cls json.RawMessage `json:"cls"`
}

// postStep adds ids before and after the sequence.
type postStep struct{ before, after []int32 }

func parsePost(raw json.RawMessage, dst []postStep, vocab map[string]int32) ([]postStep, error) {
	var p postJSON
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, formatErr("post_processor", err)
	}
	switch p.Type {
	case "ByteLevel":
		return dst, nil // only adjusts offsets
	case "Sequence":
		for _, r := range p.Processors {
			if isNull(r) {
				continue
			}
			var err error
			if dst, err = parsePost(r, dst, vocab); err != nil {
				return nil, err
			}
		}
		return dst, nil
	case "TemplateProcessing":
		var step postStep
		seen := false
		for _, e := range p.Single {
			var item struct {
				SpecialToken *struct {
					ID string `json:"id"`
				} `json:"SpecialToken"`
				Sequence *struct {
					ID string `json:"id"`
				} `json:"Sequence"`
			}
			if err := json.Unmarshal(e, &item); err != nil {
				return nil, formatErr("post_processor TemplateProcessing", err)
			}
			switch {
			case item.Sequence != nil:
				if item.Sequence.ID != "A" || seen {
					return nil, fmt.Errorf("%w: post_processor TemplateProcessing single template uses sequence %q", ErrUnsupported, item.Sequence.ID)
				}
				seen = true
			case item.SpecialToken != nil:
				st, ok := p.SpecialTokens[item.SpecialToken.ID]
				if !ok {
					return nil, fmt.Errorf("%w: post_processor TemplateProcessing: special token %q not declared", ErrFormat, item.SpecialToken.ID)
				}
				for _, id := range st.IDs {
					if id < 0 || id >= maxVocab {
						return nil, fmt.Errorf("%w: post_processor TemplateProcessing: id %d out of range", ErrFormat, id)
					}
					if seen {
						step.after = append(step.after, int32(id))
					} else {
						step.before = append(step.before, int32(id))
					}
				}
			default:
				return nil, fmt.Errorf("%w: post_processor TemplateProcessing: bad template item %s", ErrFormat, e)
			}
		}
		if !seen {
			return nil, fmt.Errorf("%w: post_processor TemplateProcessing: single template has no $A", ErrFormat)
		}
		return append(dst, step), nil
	case "RobertaProcessing", "BertProcessing":
		get := func(r json.RawMessage, what string) (int32, error) {
			var pair []json.RawMessage
			var id int64
			if err := json.Unmarshal(r, &pair); err != nil || len(pair) != 2 || json.Unmarshal(pair[1], &id) != nil || id < 0 || id >= maxVocab {
				return 0, fmt.Errorf("%w: post_processor %s: bad %s", ErrFormat, p.Type, what)
			}
			return int32(id), nil
		}
		cls, err := get(p.Cls, "cls")
		if err != nil {
			return nil, err
		}
		sep, err := get(p.Sep, "sep")
		if err != nil {
			return nil, err
		}
		return append(dst, postStep{before: []int32{cls}, after: []int32{sep}}), nil
	default:
		return nil, unsupported("post_processor", p.Type)
	}
}

// ---- decoders ----

type decoderJSON struct {
	Type          string            `json:"type"`
	Decoders      []json.RawMessage `json:"decoders"`
	Pattern       patternJSON       `json:"pattern"`
	Content       json.RawMessage   `json:"content"`
	Start         int               `json:"start"`
	Stop          int               `json:"stop"`
	Replacement   *string           `json:"replacement"`
	PrependScheme *string           `json:"prepend_scheme"`
	AddPrefix     *bool             `json:"add_prefix_space"`
	Split         *bool             `json:"split"`
}

func parseDecoder(raw json.RawMessage, dst []decoderSpec) ([]decoderSpec, error) {
	var d decoderJSON
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, formatErr("decoder", err)
	}
	switch d.Type {
	case "Sequence":
		for _, r := range d.Decoders {
			if isNull(r) {
				continue
			}
			var err error
			if dst, err = parseDecoder(r, dst); err != nil {
				return nil, err
			}
		}
		return dst, nil
	case "ByteLevel":
		return append(dst, decoderSpec{kind: decByteLevel}), nil
	case "ByteFallback":
		return append(dst, decoderSpec{kind: decByteFallback}), nil
	case "Fuse":
		return append(dst, decoderSpec{kind: decFuse}), nil
	case "Replace":
		var content string
		if err := json.Unmarshal(d.Content, &content); err != nil {
			return nil, formatErr("decoder Replace content", err)
		}
		p, err := compilePattern(d.Pattern, "decoder Replace")
		if err != nil {
			return nil, err
		}
		return append(dst, decoderSpec{kind: decReplace, pat: p, content: content}), nil
	case "Strip":
		var content string
		if err := json.Unmarshal(d.Content, &content); err != nil {
			return nil, formatErr("decoder Strip content", err)
		}
		rs := []rune(content)
		if len(rs) != 1 || d.Start < 0 || d.Stop < 0 {
			return nil, fmt.Errorf("%w: decoder Strip: content %q start %d stop %d", ErrFormat, content, d.Start, d.Stop)
		}
		return append(dst, decoderSpec{kind: decStrip, r: rs[0], start: d.Start, stop: d.Stop}), nil
	case "Metaspace":
		ms, err := parseMetaspace(preTokJSON{Replacement: d.Replacement, PrependScheme: d.PrependScheme, AddPrefixSpace: d.AddPrefix, Split: d.Split})
		if err != nil {
			return nil, err
		}
		return append(dst, decoderSpec{kind: decMetaspace, r: ms.repl, never: ms.scheme == "never"}), nil
	default:
		return nil, unsupported("decoder", d.Type)
	}
}
