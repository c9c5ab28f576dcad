package tokenizer

import (
	"encoding/binary"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// FuzzEncode: Encode never panics; invalid UTF-8 is rejected; for valid UTF-8,
// Qwen2.5 round-trips to NFC(x) and tok512 back to x (when x holds no
// sentencepiece ▁ and no special token text, which decode differently).
func FuzzEncode(f *testing.F) {
	for _, s := range []string{"", "Hello, world!", "don't  stop\r\n", "<|im_start|>user\nhi<|im_end|>", "e\u0301 😀 中文",
		"\xff\xfe bad", "   ", "<s>x</s>", "▁▁", "1234567890", "\t\t}\n"} {
		f.Add(s)
	}
	q := loadTok(f, qwenDir)
	s5 := loadTok(f, tok512Dir)
	f.Fuzz(func(t *testing.T, s string) {
		for _, tk := range []*Tokenizer{q, s5} {
			ids, err := tk.Encode(s, true)
			if !utf8.ValidString(s) {
				if err == nil {
					t.Fatalf("invalid UTF-8 %q accepted", s)
				}
				continue
			}
			if err != nil {
				t.Fatalf("Encode(%q): %v", s, err)
			}
			got, err := tk.Decode(ids, tk == s5)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			switch tk {
			case q:
				if want := norm.NFC.String(s); got != want {
					t.Fatalf("qwen round trip %q: got %q want %q", s, got, want)
				}
			case s5:
				if !strings.Contains(s, "▁") && !strings.Contains(s, "<s>") && !strings.Contains(s, "</s>") && !strings.Contains(s, "<unk>") && got != s {
					t.Fatalf("tok512 round trip %q: got %q", s, got)
				}
			}
		}
	})
}

// FuzzParse: malformed tokenizer.json / tokenizer_config.json never panic, and
// whatever parses can encode and decode without panicking.
func FuzzParse(f *testing.F) {
	f.Add([]byte(strings.NewReplacer("%SCHEME%", "always", "%SPLIT%", "true").Replace(metaspaceJSON)), []byte(`{"bos_token": "<s>", "chat_template": "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}"}`))
	f.Add([]byte(strings.NewReplacer("%SCHEME%", "first", "%SPLIT%", "false").Replace(metaspaceJSON)), []byte(`{"eos_token": {"content": "</s>"}}`))
	f.Add([]byte(`{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]},
		"normalizer": {"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "Lowercase"}, {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "}]},
		"pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithNext", "invert": true}, {"type": "ByteLevel", "add_prefix_space": true}, {"type": "Digits", "individual_digits": true}]},
		"decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"Regex": "a+"}, "content": "x"}, {"type": "Fuse"}, {"type": "Strip", "content": "x", "start": 2, "stop": 2}]},
		"post_processor": {"type": "RobertaProcessing", "sep": ["b", 1], "cls": ["a", 0]}}`), []byte(`{"chat_template": [{"name": "default", "template": "{{ messages"}]}`))
	f.Add([]byte(`{"model": {"type": "BPE", "vocab": {}, "merges": []}, "added_tokens": [{"id": 5, "content": "x", "special": true}]}`), []byte(nil))
	f.Add([]byte(`{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [["a", "a"]]}}`), []byte(`null`))
	f.Fuzz(func(t *testing.T, tj, cj []byte) {
		tk, err := Parse(tj, cj)
		if err != nil {
			return
		}
		for _, s := range []string{"", "ab ab", "Hello 123 wörld", " x\n\ty", "<s>a</s>"} {
			ids, err := tk.Encode(s, true)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tk.Decode(ids, false); err != nil {
				t.Fatal(err)
			}
		}
		d := tk.NewDecoder(true)
		for id := int32(-1); id < int32(tk.VocabSize())+1 && id < 64; id++ {
			_, _ = d.Add(id)
		}
		_ = d.Flush()
		if tk.HasChatTemplate() {
			_, _ = tk.ApplyChatTemplate([]Message{{"user", "hi"}}, true)
		}
	})
}

// FuzzStreamDecoder: for any id sequence, the stream decoder's chunks are
// valid UTF-8 and add up to Decode; invalid ids are rejected by both.
func FuzzStreamDecoder(f *testing.F) {
	seed := func(ids ...int32) []byte {
		b := make([]byte, 4*len(ids))
		for i, id := range ids {
			binary.LittleEndian.PutUint32(b[4*i:], uint32(id))
		}
		return b
	}
	f.Add(seed(9707, 11, 1879, 0), true)
	f.Add(seed(1, 410, 243, 162, 155, 158, 231, 2), false)
	f.Add(seed(151644, 26525, 249, 151645), false)
	f.Add(seed(-5, 1<<30), true)
	q := loadTok(f, qwenDir)
	s5 := loadTok(f, tok512Dir)
	f.Fuzz(func(t *testing.T, raw []byte, skip bool) {
		ids := make([]int32, 0, len(raw)/4)
		for i := 0; i+4 <= len(raw); i += 4 {
			ids = append(ids, int32(binary.LittleEndian.Uint32(raw[i:])))
		}
		for _, tk := range []*Tokenizer{q, s5} {
			// Map most ids into range, keep some invalid ones.
			m := make([]int32, len(ids))
			for i, id := range ids {
				m[i] = id
				if id >= 0 && id < 1<<20 {
					m[i] = id % int32(tk.VocabSize())
				}
			}
			want, derr := tk.Decode(m, skip)
			d := tk.NewDecoder(skip)
			var b strings.Builder
			var serr error
			for _, id := range m {
				s, err := d.Add(id)
				if err != nil {
					serr = err
					continue
				}
				if !utf8.ValidString(s) {
					t.Fatalf("chunk %q not valid UTF-8", s)
				}
				b.WriteString(s)
			}
			b.WriteString(d.Flush())
			if (derr == nil) != (serr == nil) {
				t.Fatalf("Decode err %v, stream err %v", derr, serr)
			}
			if derr == nil && b.String() != want {
				t.Fatalf("ids %v: stream %q != Decode %q", m, b.String(), want)
			}
		}
	})
}
