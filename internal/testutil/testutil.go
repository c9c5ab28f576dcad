// Package testutil holds helpers shared by the project's tests: locating the repository's
// testdata fixtures and writing small safetensors checkpoints.
package testutil

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// Testdata returns the path of elem under the repository's testdata folder (see
// testdata/README.md). The fixtures are part of the repository, so a missing path fails the
// test.
func Testdata(tb testing.TB, elem ...string) string {
	tb.Helper()
	p := filepath.Join(append([]string{Root(tb), "testdata"}, elem...)...)
	if _, err := os.Stat(p); err != nil {
		tb.Fatalf("testdata fixture missing: %v", err)
	}
	return p
}

// Root returns the repository root (the directory holding go.mod above the working
// directory).
func Root(tb testing.TB) string {
	tb.Helper()
	root, err := moduleRoot()
	if err != nil {
		tb.Fatal(err)
	}
	return root
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("testutil: no go.mod above the working directory")
		}
		dir = parent
	}
}

// Tensor is one tensor of a safetensors file: its dtype as safetensors spells it ("F32",
// "BF16", …), its shape and its little-endian bytes.
type Tensor struct {
	Name  string
	DType string
	Shape []int
	Data  []byte
}

type entry struct {
	DType   string   `json:"dtype"`
	Shape   []int    `json:"shape"`
	Offsets [2]int64 `json:"data_offsets"`
}

// ReadSafetensors reads every tensor of a safetensors file without validation beyond what it
// needs (tests use it on trusted fixtures).
func ReadSafetensors(path string) ([]Tensor, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) < 8 {
		return nil, fmt.Errorf("testutil: %s: too short", path)
	}
	n := binary.LittleEndian.Uint64(b)
	if n > uint64(len(b)-8) {
		return nil, fmt.Errorf("testutil: %s: header length %d too large", path, n)
	}
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+n], &hdr); err != nil {
		return nil, err
	}
	data := b[8+n:]
	var out []Tensor
	for name, raw := range hdr {
		if name == "__metadata__" {
			continue
		}
		var e entry
		if err := json.Unmarshal(raw, &e); err != nil {
			return nil, err
		}
		out = append(out, Tensor{Name: name, DType: e.DType, Shape: e.Shape, Data: data[e.Offsets[0]:e.Offsets[1]]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// WriteSafetensors writes tensors to path as a safetensors file, in the given order.
func WriteSafetensors(path string, tensors []Tensor) error {
	hdr := map[string]any{"__metadata__": map[string]string{"format": "pt"}}
	var off int64
	for _, t := range tensors {
		hdr[t.Name] = entry{DType: t.DType, Shape: t.Shape, Offsets: [2]int64{off, off + int64(len(t.Data))}}
		off += int64(len(t.Data))
	}
	h, err := json.Marshal(hdr)
	if err != nil {
		return err
	}
	for len(h)%8 != 0 {
		h = append(h, ' ')
	}
	buf := make([]byte, 8, 8+len(h)+int(off))
	binary.LittleEndian.PutUint64(buf, uint64(len(h)))
	buf = append(buf, h...)
	for _, t := range tensors {
		buf = append(buf, t.Data...)
	}
	return os.WriteFile(path, buf, 0o644)
}

// CopyFile copies src to dst.
func CopyFile(dst, src string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}
