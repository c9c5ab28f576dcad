package tokenizer

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// metaspaceJSON is a hand-written sentencepiece-style tokenizer.json using the
// Metaspace pre-tokenizer and decoder (as Llama 2 / Mistral files do).
// %SCHEME% and %SPLIT% are replaced by the tests.
const metaspaceJSON = `{
  "version": "1.0",
  "added_tokens": [
    {"id": 0, "content": "<unk>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
    {"id": 1, "content": "<s>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true},
    {"id": 20, "content": "[X]", "single_word": true, "lstrip": true, "rstrip": true, "normalized": true, "special": false}
  ],
  "normalizer": null,
  "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "%SCHEME%", "split": %SPLIT%},
  "post_processor": {"type": "TemplateProcessing",
    "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
    "pair": [],
    "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
  "decoder": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "%SCHEME%", "split": %SPLIT%},
  "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>", "continuing_subword_prefix": null,
    "end_of_word_suffix": null, "fuse_unk": true, "byte_fallback": false, "ignore_merges": false,
    "vocab": {"<unk>": 0, "<s>": 1, "▁": 2, "h": 3, "e": 4, "y": 5, "▁h": 6, "▁he": 7, "▁hey": 8, "o": 9, "!": 10, "y▁": 11},
    "merges": ["y ▁", ["▁", "h"], "▁h e", ["▁he", "y"]]}
}`

func metaspaceTok(t *testing.T, scheme, split string) *Tokenizer {
	t.Helper()
	js := strings.NewReplacer("%SCHEME%", scheme, "%SPLIT%", split).Replace(metaspaceJSON)
	tk, err := Parse([]byte(js), nil)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// TestMetaspace checks the Metaspace pre-tokenizer and decoder on a
// hand-written vocabulary; the expected ids follow the Rust implementation:
// spaces become ▁, a ▁ is prepended (always; first: only at the start of the
// input; never), split=true cuts before every ▁, unknown characters fuse into
// one <unk>.
func TestMetaspace(t *testing.T) {
	tests := []struct {
		scheme, split, text string
		special             bool
		ids                 []int32
		decoded             string
	}{
		{"always", "true", "hey hey", false, []int32{8, 8}, "hey hey"},
		{"always", "true", "hey hey", true, []int32{1, 8, 8}, "<s> hey hey"},
		{"always", "true", "<s>hey", false, []int32{1, 8}, "<s> hey"},
		{"first", "true", "<s>hey", false, []int32{1, 3, 4, 5}, "<s>hey"},
		{"first", "true", "hey", false, []int32{8}, "hey"},
		{"never", "true", "hey", false, []int32{3, 4, 5}, "hey"},
		{"never", "true", " hey", false, []int32{8}, " hey"},
		// split=false: "▁hey▁hey" is one word, so the "y ▁" merge (rank 0) applies;
		// with split=true no word has a ▁ after a y.
		{"always", "false", "hey hey", false, []int32{7, 11, 3, 4, 5}, "hey hey"},
		{"always", "true", "hey zzq!", false, []int32{8, 2, 0, 10}, "hey <unk>!"},
		// [X] is single_word, lstrip, rstrip: it swallows the spaces around it
		// when it stands alone, and is not matched inside a word.
		{"always", "true", "hey [X] hey", false, []int32{8, 20, 8}, "hey[X] hey"},
		{"always", "true", "hey[X]hey", false, []int32{8, 0, 3, 4, 5}, "hey<unk>hey"},
	}
	for _, tc := range tests {
		tk := metaspaceTok(t, tc.scheme, tc.split)
		ids, err := tk.Encode(tc.text, tc.special)
		if err != nil || !equalIDs(ids, tc.ids) {
			t.Errorf("%s/%s Encode(%q) = %v, %v; want %v", tc.scheme, tc.split, tc.text, ids, err, tc.ids)
			continue
		}
		got, err := tk.Decode(ids, false)
		if err != nil || got != tc.decoded {
			t.Errorf("%s/%s Decode(%v) = %q, %v; want %q", tc.scheme, tc.split, ids, got, err, tc.decoded)
		}
	}
	// Legacy add_prefix_space=false means prepend_scheme never; contradicting it is an error.
	legacy := strings.Replace(metaspaceJSON, `"prepend_scheme": "%SCHEME%", "split": %SPLIT%}`, `"add_prefix_space": false}`, 2)
	tk, err := Parse([]byte(legacy), nil)
	if err != nil {
		t.Fatal(err)
	}
	if ids, _ := tk.Encode("hey", false); !equalIDs(ids, []int32{3, 4, 5}) {
		t.Errorf("add_prefix_space=false: got %v", ids)
	}
	bad := strings.Replace(metaspaceJSON, `"prepend_scheme": "%SCHEME%", "split": %SPLIT%}`, `"add_prefix_space": false, "prepend_scheme": "always"}`, 1)
	if _, err := Parse([]byte(bad), nil); !errors.Is(err, ErrFormat) {
		t.Errorf("contradicting add_prefix_space: err = %v, want ErrFormat", err)
	}
}

func TestUnsupportedComponents(t *testing.T) {
	base := strings.NewReplacer("%SCHEME%", "always", "%SPLIT%", "true").Replace(metaspaceJSON)
	for _, tc := range []struct{ old, new, name string }{
		{`"normalizer": null`, `"normalizer": {"type": "Precompiled", "precompiled_charsmap": ""}`, "Precompiled"},
		{`"pre_tokenizer": {"type": "Metaspace"`, `"pre_tokenizer": {"type": "BertPreTokenizer"`, "BertPreTokenizer"},
		{`"decoder": {"type": "Metaspace"`, `"decoder": {"type": "WordPiece"`, "WordPiece"},
		{`"post_processor": {"type": "TemplateProcessing"`, `"post_processor": {"type": "Magic"`, "Magic"},
		{`"model": {"type": "BPE"`, `"model": {"type": "Unigram"`, "Unigram"},
	} {
		_, err := Parse([]byte(strings.Replace(base, tc.old, tc.new, 1)), nil)
		if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), tc.name) {
			t.Errorf("%s: err = %v, want ErrUnsupported naming the type", tc.name, err)
		}
	}
	for _, bad := range []string{"", "{", "[]", `{"model": null}`, `{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}}`,
		`{"model": {"type": "BPE", "vocab": {"a": -1}, "merges": []}}`,
		`{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [["a"]]}}`} {
		if _, err := Parse([]byte(bad), nil); !errors.Is(err, ErrFormat) {
			t.Errorf("Parse(%q): err = %v, want ErrFormat", bad, err)
		}
	}
}

func TestInvalidInput(t *testing.T) {
	tk := metaspaceTok(t, "always", "true")
	if _, err := tk.Encode("ok\xffno", false); !errors.Is(err, ErrInvalidUTF8) || !strings.Contains(err.Error(), "offset 2") {
		t.Errorf("Encode(invalid UTF-8): err = %v", err)
	}
	for _, id := range []int32{-1, 12, 19, 21, 1 << 30} {
		_, err := tk.Decode([]int32{8, id}, false)
		if !errors.Is(err, ErrInvalidToken) || !strings.Contains(err.Error(), "id") {
			t.Errorf("Decode(%d): err = %v, want ErrInvalidToken", id, err)
		}
		if _, err := tk.NewDecoder(false).Add(id); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("StreamDecoder.Add(%d): err = %v", id, err)
		}
	}
	if tk.VocabSize() != 21 {
		t.Errorf("VocabSize = %d, want 21", tk.VocabSize())
	}
	if _, err := tk.ApplyChatTemplate(nil, true); !errors.Is(err, ErrNoTemplate) {
		t.Errorf("ApplyChatTemplate without template: %v", err)
	}
}

func TestAccessors(t *testing.T) {
	tk := loadTok(t, tok512Dir)
	if id, ok := tk.BOS(); !ok || id != 1 {
		t.Errorf("BOS = %d, %v", id, ok)
	}
	if id, ok := tk.EOS(); !ok || id != 2 {
		t.Errorf("EOS = %d, %v", id, ok)
	}
	if !tk.AddsBOS() || tk.VocabSize() != 512 || !tk.IsSpecial(1) || tk.IsSpecial(300) || tk.HasChatTemplate() {
		t.Errorf("tok512: AddsBOS %v VocabSize %d", tk.AddsBOS(), tk.VocabSize())
	}
	if s, ok := tk.Token(1); !ok || s != "<s>" {
		t.Errorf("Token(1) = %q", s)
	}
	if id, ok := tk.TokenID("<0x0A>"); !ok || id != 13 {
		t.Errorf("TokenID(<0x0A>) = %d %v", id, ok)
	}
	q := loadTok(t, qwenDir)
	if _, ok := q.BOS(); ok {
		t.Error("qwen2.5 has no BOS")
	}
	if id, ok := q.EOS(); !ok || id != 151645 {
		t.Errorf("qwen EOS = %d %v", id, ok)
	}
	if q.AddsBOS() || q.VocabSize() != 151665 || !q.IsSpecial(151643) || q.IsSpecial(151662) {
		t.Errorf("qwen: AddsBOS %v VocabSize %d", q.AddsBOS(), q.VocabSize())
	}
	// LoadFS gives the same tokenizer.
	fsys := fstest.MapFS{}
	for _, name := range []string{"tokenizer.json", "tokenizer_config.json"} {
		b, err := readTestdata(t, tok512Dir+"/"+name)
		if err != nil {
			t.Fatal(err)
		}
		fsys[name] = &fstest.MapFile{Data: b}
	}
	tf, err := LoadFS(fsys)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := tf.Encode("Once upon a time", true)
	b, _ := tk.Encode("Once upon a time", true)
	if !equalIDs(a, b) {
		t.Errorf("LoadFS: %v vs %v", a, b)
	}
	delete(fsys, "tokenizer_config.json")
	if tf, err = LoadFS(fsys); err != nil || tf.HasChatTemplate() {
		t.Errorf("LoadFS without config: %v", err)
	} else if _, ok := tf.BOS(); ok {
		t.Error("BOS without config")
	}
	if _, err := Load(t.TempDir()); err == nil {
		t.Error("Load of an empty dir succeeded")
	}
}

// TestChatTemplateQwen renders the Qwen2.5 template. The expected strings are
// derived by hand from the template text: a leading system message is
// written once as the system turn (and skipped in the loop because it is
// loop.first); without one, the template writes its default system prompt;
// each user/assistant turn is "<|im_start|>ROLE\nCONTENT<|im_end|>\n"; the
// generation prompt is "<|im_start|>assistant\n".
func TestChatTemplateQwen(t *testing.T) {
	tk := loadTok(t, qwenDir)
	if !tk.HasChatTemplate() {
		t.Fatal("no chat template")
	}
	tests := []struct {
		msgs []Message
		gen  bool
		want string
	}{
		{[]Message{{"system", "You are a helpful assistant."}, {"user", "Hello!"}}, true,
			"<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n"},
		{[]Message{{"user", "Hi"}}, false,
			"<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"},
		{[]Message{{"user", "Hi"}}, true,
			"<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"},
		{[]Message{{"user", "2+2?"}, {"assistant", "4"}, {"user", "and 3+3?"}}, true,
			"<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n" +
				"<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n<|im_start|>user\nand 3+3?<|im_end|>\n<|im_start|>assistant\n"},
		// tool results: consecutive tool messages share one user turn.
		{[]Message{{"user", "q"}, {"tool", "r1"}, {"tool", "r2"}}, false,
			"<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nq<|im_end|>\n" +
				"<|im_start|>user\n<tool_response>\nr1\n</tool_response>\n<tool_response>\nr2\n</tool_response><|im_end|>\n"},
	}
	for i, tc := range tests {
		got, err := tk.ApplyChatTemplate(tc.msgs, tc.gen)
		if err != nil {
			t.Fatalf("%d: %v", i, err)
		}
		if got != tc.want {
			t.Errorf("%d:\n got %q\nwant %q", i, got, tc.want)
		}
	}
	// The rendered prompt tokenizes with the special tokens split out.
	s, _ := tk.ApplyChatTemplate([]Message{{"user", "hi"}}, true)
	ids, err := tk.Encode(s, false)
	if err != nil || ids[0] != 151644 || ids[len(ids)-1] != 198 {
		t.Errorf("encoded prompt %v %v", ids, err)
	}
	// A template that raises is an error, not a panic.
	bad, err := Parse(mustRead(t, qwenDir+"/tokenizer.json"), []byte(`{"chat_template": "{{ raise_exception('no') }}"}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.ApplyChatTemplate(nil, false); !errors.Is(err, ErrFormat) {
		t.Errorf("raise_exception: %v", err)
	}
}

func readTestdata(t *testing.T, rel string) ([]byte, error) {
	return readFile(needTestdata(t, rel))
}

func mustRead(t *testing.T, rel string) []byte {
	b, err := readTestdata(t, rel)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestStreamDecoderSplitsCharacters feeds ids one by one and checks that no
// chunk holds a partial character and the chunks add up to Decode.
func TestStreamDecoderSplitsCharacters(t *testing.T) {
	texts := []string{"😀 héllo 中文 ｱ", "▁▁ x", "   leading", "\n\n", "a😀😀😀b"}
	for _, dir := range []string{qwenDir, tok512Dir} {
		tk := loadTok(t, dir)
		for _, s := range texts {
			ids, err := tk.Encode(s, true)
			if err != nil {
				t.Fatal(err)
			}
			for _, skip := range []bool{false, true} {
				checkStream(t, tk, ids, skip)
			}
		}
		// Arbitrary id sequences: lone continuation bytes, truncated characters.
		checkStream(t, tk, []int32{0, 1, 2, 200, 3, 230, 231, 232, 4, 5}, false)
	}
}

func checkStream(t *testing.T, tk *Tokenizer, ids []int32, skip bool) {
	t.Helper()
	want, err := tk.Decode(ids, skip)
	if err != nil {
		t.Fatal(err)
	}
	d := tk.NewDecoder(skip)
	var b strings.Builder
	for _, id := range ids {
		s, err := d.Add(id)
		if err != nil {
			t.Fatal(err)
		}
		if !utf8.ValidString(s) {
			t.Fatalf("chunk %q is not valid UTF-8", s)
		}
		b.WriteString(s)
	}
	b.WriteString(d.Flush())
	if b.String() != want {
		t.Fatalf("stream %q != Decode %q (ids %v)", b.String(), want, ids)
	}
	// The decoder is reusable after Flush.
	if s, _ := d.Add(ids[0]); !utf8.ValidString(s) {
		t.Fatal("invalid after reuse")
	}
}

func TestLossyUTF8(t *testing.T) {
	// Expected values follow Rust's String::from_utf8_lossy: one U+FFFD per
	// maximal invalid subsequence.
	tests := []struct{ in, want string }{
		{"abc", "abc"},
		{"\xe2\x82\xac", "€"},
		{"\xe2\x82A", "\uFFFDA"},
		{"\xe2\x82", "\uFFFD"},
		{"\xff\xfe", "\uFFFD\uFFFD"},
		{"\xed\xa0\x80", "\uFFFD\uFFFD\uFFFD"},
		{"\xf0\x9f\x98", "\uFFFD"},
		{"\xf0\x9f\x98\x80\x80", "😀\uFFFD"},
		{"\xc0\x80", "\uFFFD\uFFFD"},
		{"\xf4\x90\x80\x80", "\uFFFD\uFFFD\uFFFD\uFFFD"},
	}
	for _, tc := range tests {
		// Whole and byte by byte must agree.
		var l lossyUTF8
		got := string(l.flush(l.write(nil, []byte(tc.in))))
		var l2 lossyUTF8
		var parts []byte
		for i := 0; i < len(tc.in); i++ {
			parts = l2.write(parts, []byte{tc.in[i]})
		}
		parts = l2.flush(parts)
		if got != tc.want || string(parts) != tc.want {
			t.Errorf("lossy(%q) = %q / %q, want %q", tc.in, got, parts, tc.want)
		}
	}
}

// TestRoundTrip: Decode(Encode(x)) == NFC(x) for the byte-level vocabulary.
func TestRoundTrip(t *testing.T) {
	tk := loadTok(t, qwenDir)
	for _, s := range []string{"e\u0301", "Å vs Å", "tab\tnew\nline", "<|im_start|>x", "ǅ ﬁ ①"} {
		ids, err := tk.Encode(s, true)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := tk.Decode(ids, false)
		if got != norm.NFC.String(s) {
			t.Errorf("round trip %q -> %q", s, got)
		}
	}
}

// TestConcurrentUse encodes and decodes from several goroutines (run with -race).
func TestConcurrentUse(t *testing.T) {
	tk := loadTok(t, qwenDir)
	texts := []string{"Hello, world!", "func main() {}\n", "日本語のテキスト", "don't  stop"}
	want := make([][]int32, len(texts))
	for i, s := range texts {
		want[i], _ = tk.Encode(s, false)
	}
	done := make(chan error)
	for g := range 4 {
		go func() {
			var err error
			for k := range 50 {
				i := (g + k) % len(texts)
				ids, e := tk.Encode(texts[i], false)
				if e != nil || !equalIDs(ids, want[i]) {
					err = errors.New("concurrent encode mismatch")
				}
				if s, e := tk.Decode(ids, false); e != nil || s != texts[i] {
					err = errors.New("concurrent decode mismatch")
				}
			}
			done <- err
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
