package loader

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
)

// MaxHeaderBytes is the largest safetensors JSON header ReadHeader accepts
// (100 MiB, the limit the reference implementation uses).
const MaxHeaderBytes = 100 << 20

// TensorInfo describes one tensor of a checkpoint.
type TensorInfo struct {
	Name   string
	DType  DType
	Shape  []int  // row-major dimensions; empty for a scalar
	File   string // base name of the .safetensors file that holds it
	Offset int64  // absolute byte offset of the data within File
	Size   int64  // bytes (product of Shape times DType.Size())
}

// Header is a parsed and validated safetensors header.
type Header struct {
	Tensors   []TensorInfo      // sorted by name; File is empty (ReadHeader does not know it)
	Metadata  map[string]string // the "__metadata__" entry; nil if absent
	DataStart int64             // absolute offset of the data area: 8 + header length
}

// ReadHeader reads and validates the safetensors header at the start of r,
// where size is the size of the whole file in bytes. It checks the 8-byte
// little-endian length prefix (at most MaxHeaderBytes and at most size-8),
// that the header is one valid JSON object with no duplicate keys, that every
// dtype is known, that every tensor's data_offsets lie inside the data area
// with begin <= end, that tensors do not overlap, and that each tensor's byte
// size equals the product of its shape times its dtype size, with
// overflow-checked arithmetic. It allocates no more than the header length.
// Errors are *FormatError wrapping ErrFormat, ErrDType or ErrShape.
func ReadHeader(r io.Reader, size int64) (Header, error) {
	var pre [8]byte
	if size < 8 {
		return Header{}, errf(ErrFormat, "file is %d bytes, shorter than the 8-byte header length prefix", size)
	}
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return Header{}, errf(ErrFormat, "reading header length: %v", err)
	}
	n := binary.LittleEndian.Uint64(pre[:])
	if n > MaxHeaderBytes {
		return Header{}, errf(ErrFormat, "header length %d exceeds the %d-byte limit", n, MaxHeaderBytes)
	}
	if n > uint64(size-8) {
		return Header{}, errf(ErrFormat, "header length %d exceeds the %d bytes after the length prefix (truncated file or corrupt length)", n, size-8)
	}
	if n < 2 {
		return Header{}, errf(ErrFormat, "header length %d is too short for a JSON object", n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return Header{}, errf(ErrFormat, "reading %d-byte header: %v (truncated file?)", n, err)
	}
	return parseHeader(buf, size)
}

type rawTensor struct {
	DType       *string  `json:"dtype"`
	Shape       *[]int64 `json:"shape"`
	DataOffsets *[]int64 `json:"data_offsets"`
}

func parseHeader(buf []byte, size int64) (Header, error) {
	h := Header{DataStart: 8 + int64(len(buf))}
	dataLen := size - h.DataStart
	if buf[0] != '{' {
		return Header{}, errf(ErrFormat, "header does not start with '{'")
	}
	dec := json.NewDecoder(bytes.NewReader(buf))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return Header{}, errf(ErrFormat, "header is not a JSON object")
	}
	seen := make(map[string]bool)
	type span struct {
		begin, end int64
		name       string
	}
	var spans []span
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return Header{}, errf(ErrFormat, "invalid header JSON: %v", err)
		}
		name, ok := tok.(string)
		if !ok {
			return Header{}, errf(ErrFormat, "invalid header JSON: key %v", tok)
		}
		if seen[name] {
			return Header{}, &FormatError{Tensor: name, Msg: "duplicate key in header", Err: ErrFormat}
		}
		seen[name] = true
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return Header{}, &FormatError{Tensor: name, Msg: fmt.Sprintf("invalid header JSON: %v", err), Err: ErrFormat}
		}
		if name == "__metadata__" {
			md, err := parseMetadata(raw)
			if err != nil {
				return Header{}, err
			}
			h.Metadata = md
			continue
		}
		ti, err := parseTensorEntry(name, raw, dataLen)
		if err != nil {
			return Header{}, err
		}
		ti.Offset += h.DataStart
		h.Tensors = append(h.Tensors, ti)
		if ti.Size > 0 {
			spans = append(spans, span{ti.Offset - h.DataStart, ti.Offset - h.DataStart + ti.Size, name})
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return Header{}, errf(ErrFormat, "invalid header JSON: unterminated object")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Header{}, errf(ErrFormat, "invalid header JSON: data after the object")
	}
	sort.Slice(spans, func(i, j int) bool {
		if spans[i].begin != spans[j].begin {
			return spans[i].begin < spans[j].begin
		}
		return spans[i].name < spans[j].name
	})
	for i := 1; i < len(spans); i++ {
		if spans[i].begin < spans[i-1].end {
			return Header{}, &FormatError{Tensor: spans[i].name, Err: ErrFormat,
				Msg: fmt.Sprintf("data_offsets [%d, %d] overlap tensor %q at [%d, %d]",
					spans[i].begin, spans[i].end, spans[i-1].name, spans[i-1].begin, spans[i-1].end)}
		}
	}
	sort.Slice(h.Tensors, func(i, j int) bool { return h.Tensors[i].Name < h.Tensors[j].Name })
	return h, nil
}

func parseMetadata(raw json.RawMessage) (map[string]string, error) {
	if string(raw) == "null" {
		return nil, nil
	}
	var md map[string]any
	if err := json.Unmarshal(raw, &md); err != nil {
		return nil, &FormatError{Key: "__metadata__", Msg: "metadata is not a JSON object", Err: ErrFormat}
	}
	out := make(map[string]string, len(md))
	for k, v := range md {
		s, ok := v.(string)
		if !ok {
			return nil, &FormatError{Key: "__metadata__." + k, Msg: fmt.Sprintf("metadata value %v is not a string", v), Err: ErrFormat}
		}
		out[k] = s
	}
	return out, nil
}

func parseTensorEntry(name string, raw json.RawMessage, dataLen int64) (TensorInfo, error) {
	fail := func(sentinel error, format string, args ...any) (TensorInfo, error) {
		return TensorInfo{}, &FormatError{Tensor: name, Msg: fmt.Sprintf(format, args...), Err: sentinel}
	}
	if name == "" {
		return fail(ErrFormat, "empty tensor name")
	}
	var rt rawTensor
	if err := json.Unmarshal(raw, &rt); err != nil {
		return fail(ErrFormat, "invalid tensor entry: %v", err)
	}
	if rt.DType == nil || rt.Shape == nil || rt.DataOffsets == nil {
		return fail(ErrFormat, "tensor entry needs dtype, shape and data_offsets")
	}
	dt, ok := parseDType(*rt.DType)
	if !ok {
		return fail(ErrDType, "unknown dtype %q (want one of F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL)", *rt.DType)
	}
	offs := *rt.DataOffsets
	if len(offs) != 2 {
		return fail(ErrFormat, "data_offsets has %d entries, want 2", len(offs))
	}
	begin, end := offs[0], offs[1]
	if begin < 0 || end < 0 || begin > end {
		return fail(ErrFormat, "data_offsets [%d, %d]: want 0 <= begin <= end", begin, end)
	}
	if end > dataLen {
		return fail(ErrFormat, "data_offsets [%d, %d] run past the %d-byte data area", begin, end, dataLen)
	}
	shape := make([]int, len(*rt.Shape))
	elems := int64(1)
	overflow := false
	for i, d := range *rt.Shape {
		if d < 0 || int64(int(d)) != d {
			return fail(ErrFormat, "shape %v has invalid dimension %d", *rt.Shape, d)
		}
		shape[i] = int(d)
		if d != 0 && elems > math.MaxInt64/d {
			overflow = true
		}
		elems *= d
	}
	// A zero dimension makes the product 0 even after an overflowing prefix.
	for _, d := range shape {
		if d == 0 {
			overflow, elems = false, 0
		}
	}
	if overflow || elems > math.MaxInt64/int64(dt.Size()) {
		return fail(ErrShape, "shape %v of %s overflows int64 bytes", shape, dt)
	}
	want := elems * int64(dt.Size())
	if want != end-begin {
		return fail(ErrShape, "shape %v of %s needs %d bytes, data_offsets [%d, %d] hold %d", shape, dt, want, begin, end, end-begin)
	}
	return TensorInfo{Name: name, DType: dt, Shape: shape, Offset: begin, Size: want}, nil
}
