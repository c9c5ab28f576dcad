package loader

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
)

// maxJSONBytes bounds config.json and generation_config.json (16 MiB).
const maxJSONBytes = 16 << 20

// object is a decoded JSON object with typed, error-reporting accessors. A key
// that is absent or null counts as absent. prefix is prepended to key names
// in errors (e.g. "rope_scaling.").
type object struct {
	m      map[string]json.RawMessage
	prefix string
}

func readObject(r io.Reader, what string) (object, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxJSONBytes+1))
	if err != nil {
		return object{}, errf(ErrFormat, "reading %s: %v", what, err)
	}
	if len(data) > maxJSONBytes {
		return object{}, errf(ErrFormat, "%s is larger than %d bytes", what, maxJSONBytes)
	}
	return decodeObject(data, "", what)
}

func decodeObject(data []byte, prefix, what string) (object, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil || m == nil {
		msg := "not a JSON object"
		if err != nil {
			msg = fmt.Sprintf("invalid JSON: %v", err)
		}
		fe := errf(ErrFormat, "%s: %s", what, msg)
		if prefix != "" {
			fe.Key = prefix[:len(prefix)-1]
		}
		return object{}, fe
	}
	return object{m: m, prefix: prefix}, nil
}

func (o object) raw(key string) (json.RawMessage, bool) {
	v, ok := o.m[key]
	if !ok || bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
		return nil, false
	}
	return v, true
}

func (o object) has(key string) bool { _, ok := o.raw(key); return ok }

func (o object) bad(key string, v json.RawMessage, want string) error {
	s := string(v)
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return &FormatError{Key: o.prefix + key, Msg: fmt.Sprintf("value %s is not %s", s, want), Err: ErrFormat}
}

func (o object) str(key string, def string) (string, error) {
	v, ok := o.raw(key)
	if !ok {
		return def, nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", o.bad(key, v, "a string")
	}
	return s, nil
}

func (o object) boolean(key string, def bool) (bool, error) {
	v, ok := o.raw(key)
	if !ok {
		return def, nil
	}
	var b bool
	if err := json.Unmarshal(v, &b); err != nil {
		return false, o.bad(key, v, "a boolean")
	}
	return b, nil
}

func (o object) float(key string, def float64) (float64, error) {
	v, ok := o.raw(key)
	if !ok {
		return def, nil
	}
	var f float64
	if err := json.Unmarshal(v, &f); err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, o.bad(key, v, "a finite number")
	}
	return f, nil
}

// toInt converts a JSON number with an integral value (e.g. 4096 or 4096.0)
// within ±2^53 to int.
func toInt(n json.Number) (int, bool) {
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		if i < -(1<<53) || i > 1<<53 {
			return 0, false
		}
		return int(i), true
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, false
	}
	return int(f), true
}

func (o object) integer(key string, def int) (int, error) {
	v, ok := o.raw(key)
	if !ok {
		return def, nil
	}
	var n json.Number
	if err := json.Unmarshal(v, &n); err != nil || !isNumberLiteral(v) {
		return 0, o.bad(key, v, "an integer")
	}
	i, ok := toInt(n)
	if !ok {
		return 0, o.bad(key, v, "an integer")
	}
	return i, nil
}

// isNumberLiteral rejects quoted numbers, which json.Number would accept.
func isNumberLiteral(v json.RawMessage) bool {
	v = bytes.TrimSpace(v)
	return len(v) > 0 && v[0] != '"'
}

func (o object) intList(key string) ([]int, bool, error) {
	v, ok := o.raw(key)
	if !ok {
		return nil, false, nil
	}
	var ns []json.RawMessage
	if err := json.Unmarshal(v, &ns); err != nil {
		return nil, false, o.bad(key, v, "a list of integers")
	}
	out := make([]int, 0, len(ns))
	for _, e := range ns {
		var n json.Number
		if err := json.Unmarshal(e, &n); err != nil || !isNumberLiteral(e) {
			return nil, false, o.bad(key, v, "a list of integers")
		}
		i, ok := toInt(n)
		if !ok {
			return nil, false, o.bad(key, v, "a list of integers")
		}
		out = append(out, i)
	}
	return out, true, nil
}

func (o object) strList(key string) ([]string, bool, error) {
	v, ok := o.raw(key)
	if !ok {
		return nil, false, nil
	}
	var ss []string
	if err := json.Unmarshal(v, &ss); err != nil {
		return nil, false, o.bad(key, v, "a list of strings")
	}
	return ss, true, nil
}

// tokenIDs reads a token id given as a number or a list of numbers.
func (o object) tokenIDs(key string, def []int32) ([]int32, error) {
	v, ok := o.raw(key)
	if !ok {
		return def, nil
	}
	var list []int
	if b := bytes.TrimSpace(v); len(b) > 0 && b[0] == '[' {
		l, _, err := o.intList(key)
		if err != nil {
			return nil, o.bad(key, v, "a token id or a list of token ids")
		}
		list = l
	} else {
		i, err := o.integer(key, 0)
		if err != nil {
			return nil, o.bad(key, v, "a token id or a list of token ids")
		}
		list = []int{i}
	}
	out := make([]int32, len(list))
	for i, id := range list {
		if id < 0 || id > math.MaxInt32 {
			return nil, &FormatError{Key: o.prefix + key, Msg: fmt.Sprintf("token id %d out of range [0, %d]", id, math.MaxInt32), Err: ErrFormat}
		}
		out[i] = int32(id)
	}
	return out, nil
}

func (o object) sub(key string) (object, bool, error) {
	v, ok := o.raw(key)
	if !ok {
		return object{}, false, nil
	}
	sub, err := decodeObject(v, o.prefix+key+".", "value")
	if err != nil {
		return object{}, false, err
	}
	return sub, true, nil
}
