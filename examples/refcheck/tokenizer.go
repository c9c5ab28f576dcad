package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/lighttransfer/lighttransfer-go/internal/fixtures"
	"github.com/lighttransfer/lighttransfer-go/loader/tokenizer"
)

// tokCase is one encode/decode case as produced by Hugging Face's tokenizers.
type tokCase struct {
	Text               string  `json:"text"`
	IDs                []int32 `json:"ids"`
	Decoded            string  `json:"decoded"`
	DecodedSkipSpecial string  `json:"decoded_skip_special"`
}

// maxShown is how many failures per file are printed in full.
const maxShown = 5

// loadTokenizer loads the tokenizer in dir: tokenizer.json, or when there is none a gzipped
// tokenizer.json.gz (with tokenizer_config.json when present).
func loadTokenizer(dir string) (*tokenizer.Tokenizer, error) {
	gz := filepath.Join(dir, "tokenizer.json.gz")
	if _, err := os.Stat(filepath.Join(dir, "tokenizer.json")); err == nil || !fileExists(gz) {
		return tokenizer.Load(dir)
	}
	js, err := fixtures.ReadFile(gz)
	if err != nil {
		return nil, err
	}
	cfg, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return tokenizer.Parse(js, cfg)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// checkTokenizer loads the tokenizer in dir and checks every case of each file: ids =
// Encode(text) with special tokens added, decoded = Decode(ids) keeping special tokens,
// decoded_skip_special = Decode(ids) skipping them.
func checkTokenizer(dir string, files []string, stdout io.Writer) error {
	tok, err := loadTokenizer(dir)
	if err != nil {
		return err
	}
	failed := false
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var cases []tokCase
		if err := json.Unmarshal(b, &cases); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		pass, fail := 0, 0
		for i, c := range cases {
			msg := checkCase(tok, c)
			if msg == "" {
				pass++
				continue
			}
			fail++
			if fail <= maxShown {
				fmt.Fprintf(stdout, "%s case %d FAIL: %s (text %.60q)\n", f, i, msg, c.Text)
			}
		}
		status := "pass"
		if fail > 0 {
			status, failed = "FAIL", true
		}
		fmt.Fprintf(stdout, "%s %s passed=%d failed=%d\n", f, status, pass, fail)
	}
	if failed {
		return errFailed
	}
	return nil
}

func checkCase(tok *tokenizer.Tokenizer, c tokCase) string {
	ids, err := tok.Encode(c.Text, true)
	if err != nil {
		return "encode: " + err.Error()
	}
	if !slices.Equal(ids, c.IDs) {
		return fmt.Sprintf("ids %v, want %v", head(ids), head(c.IDs))
	}
	for _, d := range []struct {
		skip bool
		want string
	}{{false, c.Decoded}, {true, c.DecodedSkipSpecial}} {
		got, err := tok.Decode(c.IDs, d.skip)
		if err != nil {
			return "decode: " + err.Error()
		}
		if got != d.want {
			return fmt.Sprintf("decode(skip_special=%v) %.60q, want %.60q", d.skip, got, d.want)
		}
	}
	return ""
}

func head(ids []int32) []int32 {
	if len(ids) > 12 {
		return ids[:12]
	}
	return ids
}
