package tokenizer

import (
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// testdataDir is the repository's testdata folder, seen from this package.
const testdataDir = "../../testdata"

// needTestdata returns the path of a file or folder under testdata (for a
// file stored gzipped, the path without ".gz"). The fixtures are part of the
// repository, so a missing one fails the test.
func needTestdata(tb testing.TB, rel string) string {
	tb.Helper()
	p := filepath.Join(testdataDir, rel)
	if _, err := os.Stat(p); err != nil {
		if _, gzErr := os.Stat(p + ".gz"); gzErr != nil {
			tb.Fatalf("testdata fixture missing: %v", err)
		}
	}
	return p
}

type encCase struct {
	Text               string  `json:"text"`
	IDs                []int32 `json:"ids"`
	Decoded            string  `json:"decoded"`
	DecodedSkipSpecial string  `json:"decoded_skip_special"`
}

func readCasesFile(path string) ([]encCase, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var cs []encCase
	err = json.Unmarshal(b, &cs)
	return cs, err
}

func loadCases(tb testing.TB, rel string) []encCase {
	tb.Helper()
	cs, err := readCasesFile(needTestdata(tb, rel))
	if err != nil {
		tb.Fatal(err)
	}
	if len(cs) == 0 {
		tb.Fatalf("%s: no cases", rel)
	}
	return cs
}

var (
	tokCache   = map[string]*Tokenizer{}
	tokCacheMu sync.Mutex
)

// loadTok loads (once per process) the tokenizer in a testdata folder; a
// tokenizer.json stored as tokenizer.json.gz is decompressed and parsed.
func loadTok(tb testing.TB, rel string) *Tokenizer {
	tb.Helper()
	dir := needTestdata(tb, rel)
	tokCacheMu.Lock()
	defer tokCacheMu.Unlock()
	if t, ok := tokCache[rel]; ok {
		return t
	}
	var t *Tokenizer
	var err error
	if _, statErr := os.Stat(filepath.Join(dir, "tokenizer.json")); statErr == nil {
		t, err = Load(dir)
	} else {
		var js, cfg []byte
		if js, err = readFile(filepath.Join(dir, "tokenizer.json")); err == nil {
			cfg, err = os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
		}
		if err == nil {
			t, err = Parse(js, cfg)
		}
	}
	if err != nil {
		tb.Fatal(err)
	}
	tokCache[rel] = t
	return t
}

const (
	qwenDir   = "tokenizers/qwen2.5"
	tok512Dir = "stories260K"
)

// TestSharedCases checks every case produced by Hugging Face's tokenizers:
// encode with the post-processor, decode keeping and skipping special tokens,
// and the stream decoder against Decode.
func TestSharedCases(t *testing.T) {
	for _, tc := range []struct{ name, dir, cases string }{
		{"qwen2.5", qwenDir, "tokenizers/qwen2.5/cases.json"},
		{"tok512", tok512Dir, "tokenizers/tok512/cases.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tk := loadTok(t, tc.dir)
			cs := loadCases(t, tc.cases)
			pass := 0
			for i, c := range cs {
				ok := true
				ids, err := tk.Encode(c.Text, true)
				if err != nil || !equalIDs(ids, c.IDs) {
					ok = false
					t.Errorf("case %d %q: encode\n got %v (err %v)\nwant %v", i, c.Text, ids, err, c.IDs)
				}
				for _, skip := range []bool{false, true} {
					want := c.Decoded
					if skip {
						want = c.DecodedSkipSpecial
					}
					got, err := tk.Decode(c.IDs, skip)
					if err != nil || got != want {
						ok = false
						t.Errorf("case %d: decode(skip=%v)\n got %q (err %v)\nwant %q", i, skip, got, err, want)
					}
					sd := tk.NewDecoder(skip)
					var s string
					for _, id := range c.IDs {
						part, err := sd.Add(id)
						if err != nil {
							t.Fatal(err)
						}
						s += part
					}
					s += sd.Flush()
					if s != want {
						ok = false
						t.Errorf("case %d: stream decode(skip=%v)\n got %q\nwant %q", i, skip, s, want)
					}
				}
				if ok {
					pass++
				}
			}
			t.Logf("%s: %d/%d cases pass", tc.name, pass, len(cs))
		})
	}
}

func equalIDs(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// readFile reads path, or decompresses path+".gz" when only that exists.
func readFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return b, err
	}
	f, gzErr := os.Open(path + ".gz")
	if gzErr != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s.gz: %w", path, err)
	}
	return io.ReadAll(zr)
}
