package refcheck

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"

	"github.com/lighttransfer/lighttransfer-go/loader"
)

// The two files a reference checkpoint directory may hold its references in.
const (
	// JSONFile is the reference format produced next to the Hugging Face runs: one JSON object
	// with the keys of Reference, logits as nested arrays of decimal numbers.
	JSONFile = "reference.json"
	// CompactFile holds the same content as a safetensors file: the arrays as tensors (logits
	// F32 [T][vocab], tokens and layer lists I32, lazy ratios F64) named by their JSON key
	// ("logits_full", "test_mode.logits", …), the scalars (P, sink, window, w_last,
	// test_mode.keep) and any provenance keys in __metadata__ as their JSON text.
	CompactFile = "reference.safetensors"
)

// scalarKeys are the metadata keys that fill Reference's integer fields.
var scalarKeys = []string{"P", "sink", "window", "w_last", "test_mode.keep"}

// ErrBadReference reports a reference file whose content does not fit its format.
var ErrBadReference = errors.New("refcheck: malformed reference")

// ReadCompact reads a reference stored in CompactFile format (see ParseCompact).
func ReadCompact(path string) (*Reference, map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("refcheck: %w", err)
	}
	return ParseCompact(b, path)
}

// ParseCompact decodes the bytes of a CompactFile; name labels errors. The header is validated
// by loader.ReadHeader; tensors must have the dtypes and shapes listed at CompactFile, else the
// error wraps ErrBadReference (or one of package loader's). Besides the Reference it returns
// the metadata entries that are not Reference fields (provenance: the library versions and
// settings that produced it), as JSON text.
func ParseCompact(b []byte, name string) (*Reference, map[string]string, error) {
	path := name
	h, err := loader.ReadHeader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, nil, fmt.Errorf("refcheck: %s: %w", path, err)
	}
	fail := func(format string, args ...any) (*Reference, map[string]string, error) {
		return nil, nil, fmt.Errorf("%w: %s: %s", ErrBadReference, path, fmt.Sprintf(format, args...))
	}
	var r Reference
	extra := map[string]string{}
	for k, v := range h.Metadata {
		extra[k] = v
	}
	ints := map[string]*int{"P": &r.P, "sink": &r.Sink, "window": &r.Window, "w_last": &r.WLast}
	var keep int
	ints["test_mode.keep"] = &keep
	for _, k := range scalarKeys {
		s, ok := extra[k]
		if !ok {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil {
			return fail("metadata %s = %q is not an integer", k, s)
		}
		*ints[k] = n
		delete(extra, k)
	}
	tm := &struct {
		Keep       int         `json:"keep"`
		LazyLayers []int       `json:"lazy_layers"`
		Logits     [][]float64 `json:"logits"`
	}{Keep: keep}
	tr := &struct {
		LazyLayers []int       `json:"lazy_layers"`
		Logits     [][]float64 `json:"logits"`
	}{}
	_, hasKeep := h.Metadata["test_mode.keep"]
	hasTM, hasTR := hasKeep, false
	for _, t := range h.Tensors {
		data := b[t.Offset : t.Offset+t.Size]
		want := map[string]loader.DType{"tokens": loader.I32, "lazy_ratio": loader.F64,
			"logits_full": loader.F32, "test_mode.logits": loader.F32, "train_mode.logits": loader.F32,
			"test_mode.lazy_layers": loader.I32, "train_mode.lazy_layers": loader.I32}
		dt, known := want[t.Name]
		if !known {
			return fail("unknown tensor %q", t.Name)
		}
		if t.DType != dt {
			return fail("tensor %q is %v, want %v", t.Name, t.DType, dt)
		}
		switch t.Name {
		case "tokens":
			if len(t.Shape) != 1 {
				return fail("tensor tokens has shape %v, want [T]", t.Shape)
			}
			r.Tokens = make([]int32, t.Shape[0])
			for i := range r.Tokens {
				r.Tokens[i] = int32(binary.LittleEndian.Uint32(data[4*i:]))
			}
		case "lazy_ratio":
			if len(t.Shape) != 1 {
				return fail("tensor lazy_ratio has shape %v, want [L]", t.Shape)
			}
			r.LazyRatio = make([]float64, t.Shape[0])
			for i := range r.LazyRatio {
				r.LazyRatio[i] = math.Float64frombits(binary.LittleEndian.Uint64(data[8*i:]))
			}
		case "test_mode.lazy_layers", "train_mode.lazy_layers":
			if len(t.Shape) != 1 {
				return fail("tensor %s has shape %v, want [n]", t.Name, t.Shape)
			}
			l := make([]int, t.Shape[0])
			for i := range l {
				l[i] = int(int32(binary.LittleEndian.Uint32(data[4*i:])))
			}
			if t.Name == "test_mode.lazy_layers" {
				tm.LazyLayers, hasTM = l, true
			} else {
				tr.LazyLayers, hasTR = l, true
			}
		default: // logits
			if len(t.Shape) != 2 || t.Shape[0] == 0 || t.Shape[1] == 0 {
				return fail("tensor %s has shape %v, want [T][vocab], both positive", t.Name, t.Shape)
			}
			rows := make([][]float64, t.Shape[0])
			V := t.Shape[1]
			for i := range rows {
				rows[i] = make([]float64, V)
				for j := range rows[i] {
					rows[i][j] = float64(math.Float32frombits(binary.LittleEndian.Uint32(data[4*(i*V+j):])))
				}
			}
			switch t.Name {
			case "logits_full":
				r.LogitsFull = rows
			case "test_mode.logits":
				tm.Logits, hasTM = rows, true
			default:
				tr.Logits, hasTR = rows, true
			}
		}
	}
	if hasTM {
		r.TestMode = tm
	}
	if hasTR {
		r.TrainMode = tr
	}
	if err := r.validate(); err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %w", ErrBadReference, path, err)
	}
	return &r, extra, nil
}

// EncodeCompact returns r in CompactFile format; extra adds provenance entries to the metadata
// (JSON text, as ReadCompact returns them). Logits are rounded to float32, which loses nothing
// for references computed in float32. The bytes depend only on r and extra.
func EncodeCompact(r *Reference, extra map[string]string) ([]byte, error) {
	const path = "compact reference"
	type tensor struct {
		name  string
		dtype string
		shape []int
		data  []byte
	}
	var ts []tensor
	i32 := func(name string, v []int32) {
		d := make([]byte, 4*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint32(d[4*i:], uint32(x))
		}
		ts = append(ts, tensor{name, "I32", []int{len(v)}, d})
	}
	ints := func(name string, v []int) {
		w := make([]int32, len(v))
		for i, x := range v {
			w[i] = int32(x)
		}
		i32(name, w)
	}
	logits := func(name string, rows [][]float64) error {
		if len(rows) == 0 {
			return fmt.Errorf("%w: %s: %s has no rows", ErrBadReference, path, name)
		}
		V := len(rows[0])
		d := make([]byte, 0, 4*len(rows)*V)
		for t, row := range rows {
			if len(row) != V {
				return fmt.Errorf("%w: %s: %s row %d has %d values, row 0 has %d", ErrBadReference, path, name, t, len(row), V)
			}
			for _, x := range row {
				d = binary.LittleEndian.AppendUint32(d, math.Float32bits(float32(x)))
			}
		}
		ts = append(ts, tensor{name, "F32", []int{len(rows), V}, d})
		return nil
	}
	meta := map[string]string{}
	for k, v := range extra {
		meta[k] = v
	}
	meta["P"] = strconv.Itoa(r.P)
	if r.Window != 0 || r.Sink != 0 || r.WLast != 0 {
		meta["sink"], meta["window"], meta["w_last"] = strconv.Itoa(r.Sink), strconv.Itoa(r.Window), strconv.Itoa(r.WLast)
	}
	i32("tokens", r.Tokens)
	if r.LogitsFull != nil {
		if err := logits("logits_full", r.LogitsFull); err != nil {
			return nil, err
		}
	}
	if r.LazyRatio != nil {
		d := make([]byte, 8*len(r.LazyRatio))
		for i, x := range r.LazyRatio {
			binary.LittleEndian.PutUint64(d[8*i:], math.Float64bits(x))
		}
		ts = append(ts, tensor{"lazy_ratio", "F64", []int{len(r.LazyRatio)}, d})
	}
	if tm := r.TestMode; tm != nil {
		meta["test_mode.keep"] = strconv.Itoa(tm.Keep)
		if tm.LazyLayers != nil {
			ints("test_mode.lazy_layers", tm.LazyLayers)
		}
		if tm.Logits != nil {
			if err := logits("test_mode.logits", tm.Logits); err != nil {
				return nil, err
			}
		}
	}
	if tr := r.TrainMode; tr != nil {
		if tr.LazyLayers != nil {
			ints("train_mode.lazy_layers", tr.LazyLayers)
		}
		if tr.Logits != nil {
			if err := logits("train_mode.logits", tr.Logits); err != nil {
				return nil, err
			}
		}
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].name < ts[j].name })
	hdr := map[string]any{"__metadata__": meta}
	var off int
	for _, t := range ts {
		hdr[t.name] = map[string]any{"dtype": t.dtype, "shape": t.shape, "data_offsets": [2]int{off, off + len(t.data)}}
		off += len(t.data)
	}
	h, err := json.Marshal(hdr)
	if err != nil {
		return nil, fmt.Errorf("refcheck: %s: %w", path, err)
	}
	for len(h)%8 != 0 {
		h = append(h, ' ')
	}
	out := binary.LittleEndian.AppendUint64(make([]byte, 0, 8+len(h)+off), uint64(len(h)))
	out = append(out, h...)
	for _, t := range ts {
		out = append(out, t.data...)
	}
	return out, nil
}
