package refcheck_test

import (
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/lighttransfer/lighttransfer-go/internal/refcheck"
	"github.com/lighttransfer/lighttransfer-go/loader"
)

// sample is a small reference with every key, its values exactly representable in float32.
func sample() *refcheck.Reference {
	r := &refcheck.Reference{Tokens: []int32{1, 5, 7, 3}, P: 3, Sink: 1, Window: 2, WLast: 2,
		LogitsFull: [][]float64{{0.5, -1.25}, {3, 4}, {-0.125, 8}, {1, 2}},
		LazyRatio:  []float64{0.7071067811865476, 0.1}}
	r.TestMode = &struct {
		Keep       int         `json:"keep"`
		LazyLayers []int       `json:"lazy_layers"`
		Logits     [][]float64 `json:"logits"`
	}{Keep: 1, LazyLayers: []int{1}, Logits: [][]float64{{1, 2}, {3, 4}, {5, 6}, {7, 8}}}
	r.TrainMode = &struct {
		LazyLayers []int       `json:"lazy_layers"`
		Logits     [][]float64 `json:"logits"`
	}{LazyLayers: []int{0}, Logits: [][]float64{{-1, -2}, {-3, -4}, {-5, -6}, {-7, -8}}}
	return r
}

// TestCompactRoundTrip: EncodeCompact then ParseCompact gives back the reference and the
// provenance exactly, and the bytes do not depend on map order.
func TestCompactRoundTrip(t *testing.T) {
	extra := map[string]string{"torch": `"1.13"`, "seed": "7"}
	for name, r := range map[string]*refcheck.Reference{
		"all keys":    sample(),
		"logits only": {Tokens: []int32{1, 2}, P: 2, LogitsFull: [][]float64{{1, 2, 3}, {4, 5, 6}}},
	} {
		b, err := refcheck.EncodeCompact(r, extra)
		if err != nil {
			t.Fatal(err)
		}
		b2, err := refcheck.EncodeCompact(r, extra)
		if err != nil || string(b) != string(b2) {
			t.Fatalf("%s: encoding is not deterministic (%v)", name, err)
		}
		got, gotExtra, err := refcheck.ParseCompact(b, name)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(r, got) {
			t.Errorf("%s: read back\n%+v\nwant\n%+v", name, got, r)
		}
		if !reflect.DeepEqual(extra, gotExtra) {
			t.Errorf("%s: provenance %v, want %v", name, gotExtra, extra)
		}
	}
}

// TestCompactErrors: malformed compact references fail with errors naming the problem.
func TestCompactErrors(t *testing.T) {
	if _, err := refcheck.EncodeCompact(&refcheck.Reference{Tokens: []int32{1}, P: 1, LogitsFull: [][]float64{{1, 2}, {3}}}, nil); !errors.Is(err, refcheck.ErrBadReference) {
		t.Errorf("ragged logits: %v", err)
	}
	good, err := refcheck.EncodeCompact(sample(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := refcheck.ParseCompact(good[:len(good)-4], "truncated"); !errors.Is(err, loader.ErrFormat) {
		t.Errorf("truncated: %v", err)
	}
	bad, err := refcheck.EncodeCompact(&refcheck.Reference{Tokens: []int32{1, 2}, P: 5}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := refcheck.ParseCompact(bad, "P past tokens"); !errors.Is(err, refcheck.ErrBadReference) {
		t.Errorf("P past the tokens: %v", err)
	}
	// A JSON reference.json whose P exceeds its tokens, and a directory with no reference.
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{}`), 0o644))
	if _, err := refcheck.ReadReference(dir); !errors.Is(err, refcheck.ErrNoReference) {
		t.Errorf("no reference file: %v", err)
	}
	must(t, os.WriteFile(filepath.Join(dir, refcheck.JSONFile), []byte(`{"tokens": [1], "P": 3}`), 0o644))
	if _, err := refcheck.ReadReference(dir); !errors.Is(err, refcheck.ErrBadReference) {
		t.Errorf("bad reference.json: %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// FuzzParseCompact: any bytes either parse into a valid reference or fail with an error, never
// a panic; what parses re-encodes and parses to the same reference.
func FuzzParseCompact(f *testing.F) {
	good, err := refcheck.EncodeCompact(sample(), map[string]string{"seed": "1"})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	if b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "reference", "qwen3-tiny", refcheck.CompactFile)); err == nil {
		f.Add(b)
	}
	f.Add([]byte{})
	hdr := []byte(`{"tokens":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`)
	f.Add(append(binary.LittleEndian.AppendUint64(nil, uint64(len(hdr))), append(hdr, 0, 0, 0, 0)...))
	hdr = []byte(`{"__metadata__":{"P":"x"},"tokens":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}}`)
	f.Add(append(binary.LittleEndian.AppendUint64(nil, uint64(len(hdr))), append(hdr, 1, 0, 0, 0)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, extra, err := refcheck.ParseCompact(b, "fuzz")
		if err != nil {
			return
		}
		again, err := refcheck.EncodeCompact(r, extra)
		if err != nil {
			return // e.g. logits with no rows: parseable, not re-encodable
		}
		r2, _, err := refcheck.ParseCompact(again, "again")
		if err != nil {
			t.Fatalf("re-encoded reference does not parse: %v", err)
		}
		if !reflect.DeepEqual(r, r2) && !hasNaN(r) {
			t.Fatalf("re-encoded reference differs")
		}
	})
}

func hasNaN(r *refcheck.Reference) bool {
	vals := slices.Clone(r.LazyRatio)
	tables := [][][]float64{r.LogitsFull}
	if r.TestMode != nil {
		tables = append(tables, r.TestMode.Logits)
	}
	if r.TrainMode != nil {
		tables = append(tables, r.TrainMode.Logits)
	}
	for _, rows := range tables {
		for _, row := range rows {
			vals = append(vals, row...)
		}
	}
	return slices.ContainsFunc(vals, math.IsNaN)
}
