package loader

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// testdataDir is the repository's testdata folder, seen from this package's directory (where
// tests run).
var testdataDir = filepath.Join("..", "testdata")

// referenceDirs lists every checkpoint the tests read: the five tiny reference models and
// stories260K.
func referenceDirs(t *testing.T) []string {
	t.Helper()
	dirs, _ := filepath.Glob(filepath.Join(testdataDir, "reference", "*", "model.safetensors"))
	var out []string
	for _, d := range dirs {
		out = append(out, filepath.Dir(d))
	}
	if len(out) != 5 {
		t.Fatalf("want the 5 reference checkpoints under %s, found %v", testdataDir, out)
	}
	out = append(out, filepath.Join(testdataDir, "stories260K"))
	for _, d := range out {
		requireDir(t, d)
	}
	return out
}

// requireDir fails when a testdata checkpoint is missing (the fixtures are part of the
// repository).
func requireDir(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err != nil {
		t.Fatalf("testdata checkpoint missing: %v", err)
	}
}

// wTensor is a tensor for the test safetensors writer.
type wTensor struct {
	Name  string
	DType string
	Shape []int
	Data  []byte
}

// writeSafetensors builds a safetensors file: tensors laid out in the given
// order, the JSON header padded with spaces so that its length is a multiple
// of align (1: no padding).
func writeSafetensors(t testing.TB, tensors []wTensor, metadata map[string]string, align int) []byte {
	t.Helper()
	hdr := map[string]any{}
	if metadata != nil {
		hdr["__metadata__"] = metadata
	}
	var data []byte
	for _, x := range tensors {
		hdr[x.Name] = map[string]any{"dtype": x.DType, "shape": x.Shape,
			"data_offsets": []int{len(data), len(data) + len(x.Data)}}
		data = append(data, x.Data...)
	}
	js, err := json.Marshal(hdr)
	if err != nil {
		t.Fatal(err)
	}
	for len(js)%align != 0 {
		js = append(js, ' ')
	}
	return assemble(js, data)
}

// assemble prefixes a header with its length and appends the data area.
func assemble(header, data []byte) []byte {
	var buf bytes.Buffer
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(header)))
	buf.Write(n[:])
	buf.Write(header)
	buf.Write(data)
	return buf.Bytes()
}

// splitFile returns a safetensors file's JSON header (decoded) and its data area.
func splitFile(t testing.TB, file []byte) (map[string]any, []byte) {
	t.Helper()
	n := binary.LittleEndian.Uint64(file[:8])
	var hdr map[string]any
	if err := json.Unmarshal(file[8:8+n], &hdr); err != nil {
		t.Fatal(err)
	}
	return hdr, file[8+n:]
}

// rebuild re-serializes an edited header in front of data.
func rebuild(t testing.TB, hdr map[string]any, data []byte) []byte {
	t.Helper()
	js, err := json.Marshal(hdr)
	if err != nil {
		t.Fatal(err)
	}
	return assemble(js, data)
}

// tensorNames returns the header's tensor names, sorted.
func tensorNames(hdr map[string]any) []string {
	var names []string
	for k := range hdr {
		if k != "__metadata__" {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	return names
}

// copyCheckpoint writes config.json and the given weights file into a temp dir.
func copyCheckpoint(t *testing.T, src string, weights []byte) string {
	t.Helper()
	dir := t.TempDir()
	cfg, err := os.ReadFile(filepath.Join(src, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	must(t, os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o644))
	if weights != nil {
		must(t, os.WriteFile(filepath.Join(dir, "model.safetensors"), weights, 0o644))
	}
	return dir
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
