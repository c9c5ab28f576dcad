package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"unicode/utf8"

	"github.com/ardanlabs/jinja"
)

// Sentinel errors. Every error returned by this package starts with
// "tokenizer: " and wraps one of them (check with errors.Is), except file
// errors from Load and LoadFS, which wrap the fs error (e.g. fs.ErrNotExist).
var (
	// ErrFormat reports a malformed tokenizer.json or tokenizer_config.json.
	ErrFormat = errors.New("tokenizer: bad format")
	// ErrUnsupported reports a component type (normalizer, pre-tokenizer,
	// model, post-processor, decoder) or option this package does not implement.
	ErrUnsupported = errors.New("tokenizer: unsupported")
	// ErrNoTemplate reports that tokenizer_config.json has no chat_template.
	ErrNoTemplate = errors.New("tokenizer: no chat template")
	// ErrInvalidToken reports a token id that names no token.
	ErrInvalidToken = errors.New("tokenizer: invalid token id")
	// ErrInvalidUTF8 reports Encode input that is not valid UTF-8.
	ErrInvalidUTF8 = errors.New("tokenizer: invalid UTF-8")
)

// Tokenizer encodes text to token ids and decodes ids back to text following a
// Hugging Face tokenizer.json. It is immutable after loading and safe for
// concurrent use by multiple goroutines.
type Tokenizer struct {
	vocab   map[string]int32 // model vocabulary plus added tokens
	tokens  []string         // id → token string ("" where hasTok is false)
	hasTok  []bool
	special []bool // id → added token marked special

	added addedVocab

	normalizer normalizer     // nil: none
	pretok     []preTokenizer // applied in order
	model      *bpe
	post       []postStep // applied in order (only with addSpecial)
	decoder    []decoderSpec

	bos, eos       int32
	hasBOS, hasEOS bool
	bosStr, eosStr string
	chatTemplate   string
	hasTemplate    bool

	tmplOnce sync.Once
	tmpl     *jinja.Template
	tmplErr  error
}

// Load reads dir/tokenizer.json and, if present, dir/tokenizer_config.json
// (special token names and chat template). A missing tokenizer_config.json
// is not an error.
func Load(dir string) (*Tokenizer, error) {
	tj, err := os.ReadFile(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	cj, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("tokenizer: %w", err)
		}
		cj = nil
	}
	return Parse(tj, cj)
}

// LoadFS is Load for a file system: it reads tokenizer.json and, if present,
// tokenizer_config.json from the root of fsys.
func LoadFS(fsys fs.FS) (*Tokenizer, error) {
	tj, err := fs.ReadFile(fsys, "tokenizer.json")
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	cj, err := fs.ReadFile(fsys, "tokenizer_config.json")
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("tokenizer: %w", err)
		}
		cj = nil
	}
	return Parse(tj, cj)
}

// Parse builds a Tokenizer from the contents of tokenizer.json and
// tokenizer_config.json (nil or empty: no config, so no BOS/EOS names and no
// chat template). Errors wrap ErrFormat or ErrUnsupported.
func Parse(tokenizerJSON, tokenizerConfigJSON []byte) (*Tokenizer, error) {
	t, err := parseTokenizer(tokenizerJSON)
	if err != nil {
		return nil, err
	}
	if len(tokenizerConfigJSON) > 0 {
		if err := t.parseConfig(tokenizerConfigJSON); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// VocabSize returns the number of token ids: one more than the largest id of
// the model vocabulary and the added tokens (Qwen2.5: 151665).
func (t *Tokenizer) VocabSize() int { return len(t.tokens) }

// BOS returns the id of the tokenizer_config.json bos_token, if it names a token.
func (t *Tokenizer) BOS() (int32, bool) { return t.bos, t.hasBOS }

// EOS returns the id of the tokenizer_config.json eos_token, if it names a token.
func (t *Tokenizer) EOS() (int32, bool) { return t.eos, t.hasEOS }

// TokenID returns the id of token string s (model vocabulary or added token),
// in the vocabulary's own spelling (byte-level tokens use "Ġ" for a space).
func (t *Tokenizer) TokenID(s string) (int32, bool) {
	id, ok := t.vocab[s]
	return id, ok
}

// Token returns the token string of id, as written in tokenizer.json.
func (t *Tokenizer) Token(id int32) (string, bool) {
	if id < 0 || int(id) >= len(t.tokens) || !t.hasTok[id] {
		return "", false
	}
	return t.tokens[id], true
}

// IsSpecial reports whether id is an added token marked special (skipped by
// Decode with skipSpecial).
func (t *Tokenizer) IsSpecial(id int32) bool {
	return id >= 0 && int(id) < len(t.special) && t.special[id]
}

// AddsBOS reports whether Encode(text, true) prepends at least one token
// (for example BOS from a TemplateProcessing post-processor).
func (t *Tokenizer) AddsBOS() bool {
	for _, p := range t.post {
		if len(p.before) > 0 {
			return true
		}
	}
	return false
}

// Encode converts text into token ids exactly as the Hugging Face tokenizers
// library does with add_special_tokens=addSpecial: added tokens are split out,
// the rest normalized, pre-tokenized and run through the model; addSpecial
// applies the post-processor (BOS etc.). Text that is not valid UTF-8 returns
// an error wrapping ErrInvalidUTF8 naming the byte offset.
func (t *Tokenizer) Encode(text string, addSpecial bool) ([]int32, error) {
	if !utf8.ValidString(text) {
		off := 0
		for off < len(text) {
			r, n := utf8.DecodeRuneInString(text[off:])
			if r == utf8.RuneError && n == 1 {
				break
			}
			off += n
		}
		return nil, fmt.Errorf("%w: byte offset %d", ErrInvalidUTF8, off)
	}
	ids := make([]int32, 0, len(text)/3+4)
	if addSpecial {
		for _, p := range t.post {
			ids = append(ids, p.before...)
		}
	}
	ids = t.encodeBody(ids, text)
	if addSpecial {
		for i := len(t.post) - 1; i >= 0; i-- {
			ids = append(ids, t.post[i].after...)
		}
	}
	return ids, nil
}

// encodeBody appends the ids of text (valid UTF-8) without post-processing.
func (t *Tokenizer) encodeBody(dst []int32, text string) []int32 {
	var pieces []piece
	pieces = t.added.split(pieces[:0], text, t.normalizer)
	var sub []piece
	for _, p := range pieces {
		if p.id >= 0 {
			dst = append(dst, p.id)
			continue
		}
		sub = append(sub[:0], p)
		for _, pt := range t.pretok {
			sub = pt.split(sub)
		}
		for _, s := range sub {
			dst = t.model.encode(dst, s.s)
		}
	}
	return dst
}

// piece is a part of the input during encoding.
type piece struct {
	s     string
	id    int32 // >= 0: already an added token
	first bool  // starts at original offset 0 (Metaspace prepend_scheme "first")
}

// parseConfig reads tokenizer_config.json.
func (t *Tokenizer) parseConfig(b []byte) error {
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(b, &cfg); err != nil {
		return fmt.Errorf("%w: tokenizer_config.json: %v", ErrFormat, err)
	}
	tokName := func(key string) (string, bool, error) {
		raw, ok := cfg[key]
		if !ok || string(raw) == "null" {
			return "", false, nil
		}
		var s string
		if err := json.Unmarshal(raw, &s); err == nil {
			return s, true, nil
		}
		var obj struct {
			Content *string `json:"content"`
		}
		if err := json.Unmarshal(raw, &obj); err != nil || obj.Content == nil {
			return "", false, fmt.Errorf("%w: tokenizer_config.json: %s is neither a string nor a token object", ErrFormat, key)
		}
		return *obj.Content, true, nil
	}
	var err error
	var ok bool
	if t.bosStr, ok, err = tokName("bos_token"); err != nil {
		return err
	} else if ok {
		t.bos, t.hasBOS = t.vocab[t.bosStr]
	}
	if t.eosStr, ok, err = tokName("eos_token"); err != nil {
		return err
	} else if ok {
		t.eos, t.hasEOS = t.vocab[t.eosStr]
	}
	if raw, ok := cfg["chat_template"]; ok && string(raw) != "null" {
		var s string
		if err := json.Unmarshal(raw, &s); err == nil {
			t.chatTemplate, t.hasTemplate = s, true
		} else {
			var list []struct {
				Name     string `json:"name"`
				Template string `json:"template"`
			}
			if err := json.Unmarshal(raw, &list); err != nil {
				return fmt.Errorf("%w: tokenizer_config.json: chat_template: %v", ErrFormat, err)
			}
			for _, e := range list {
				if e.Name == "default" {
					t.chatTemplate, t.hasTemplate = e.Template, true
				}
			}
		}
	}
	return nil
}
