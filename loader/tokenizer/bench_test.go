package tokenizer

import (
	"strings"
	"testing"
)

// benchText builds about 100 KB of text by repeating the Qwen2.5 cases' texts.
func benchText(tb testing.TB) string {
	cs := loadCases(tb, "tokenizers/qwen2.5/cases.json")
	var b strings.Builder
	for b.Len() < 100<<10 {
		for _, c := range cs {
			b.WriteString(c.Text)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// BenchmarkEncode reports encode throughput (b.SetBytes: input bytes) on
// ~100 KB of mixed code, prose and Unicode text.
func BenchmarkEncode(b *testing.B) {
	text := benchText(b)
	for _, tc := range []struct{ name, dir string }{{"qwen2.5", qwenDir}, {"tok512", tok512Dir}} {
		b.Run(tc.name, func(b *testing.B) {
			tk := loadTok(b, tc.dir)
			b.SetBytes(int64(len(text)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tk.Encode(text, true); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecode reports decode throughput in output bytes.
func BenchmarkDecode(b *testing.B) {
	text := benchText(b)
	for _, tc := range []struct{ name, dir string }{{"qwen2.5", qwenDir}, {"tok512", tok512Dir}} {
		b.Run(tc.name, func(b *testing.B) {
			tk := loadTok(b, tc.dir)
			ids, err := tk.Encode(text, false)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				if _, err := tk.Decode(ids, false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
