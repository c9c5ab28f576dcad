package loader

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// IndexFile is the name of a sharded checkpoint's index.
const IndexFile = "model.safetensors.index.json"

// SingleFile is the name of a single-file checkpoint's weights.
const SingleFile = "model.safetensors"

// shardIndex is a parsed model.safetensors.index.json.
type shardIndex struct {
	weightMap map[string]string // tensor name → shard base name
	files     []string          // distinct shard names, sorted
}

// parseIndex parses and validates a sharded-checkpoint index: a JSON object
// whose "weight_map" maps tensor names to shard file base names (no path
// separators, not "." or ".."). "metadata" is accepted and ignored.
func parseIndex(data []byte) (shardIndex, error) {
	var raw struct {
		Metadata  json.RawMessage    `json:"metadata"`
		WeightMap *map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return shardIndex{}, &FormatError{File: IndexFile, Msg: fmt.Sprintf("invalid JSON: %v", err), Err: ErrFormat}
	}
	if raw.WeightMap == nil {
		return shardIndex{}, &FormatError{File: IndexFile, Key: "weight_map", Msg: "missing weight_map", Err: ErrFormat}
	}
	wm := *raw.WeightMap
	if len(wm) == 0 {
		return shardIndex{}, &FormatError{File: IndexFile, Key: "weight_map", Msg: "weight_map is empty", Err: ErrFormat}
	}
	seen := map[string]bool{}
	idx := shardIndex{weightMap: wm}
	for name, file := range wm {
		if name == "" {
			return shardIndex{}, &FormatError{File: IndexFile, Key: "weight_map", Msg: "empty tensor name", Err: ErrFormat}
		}
		if !validShardName(file) {
			return shardIndex{}, &FormatError{File: IndexFile, Key: "weight_map", Tensor: name,
				Msg: fmt.Sprintf("shard file %q is not a plain file name in the checkpoint directory", file), Err: ErrFormat}
		}
		if !seen[file] {
			seen[file] = true
			idx.files = append(idx.files, file)
		}
	}
	sort.Strings(idx.files)
	return idx, nil
}

func validShardName(f string) bool {
	return f != "" && f != "." && f != ".." && !strings.ContainsAny(f, "/\\\x00")
}
