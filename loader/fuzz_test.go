package loader

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// headerSeeds are valid and broken safetensors files for FuzzReadHeader.
func headerSeeds(t testing.TB) [][]byte {
	valid := writeSafetensors(t, []wTensor{
		{"a", "F32", []int{2}, make([]byte, 8)},
		{"b", "BF16", []int{1, 3}, make([]byte, 6)},
		{"c", "U8", []int{0}, nil},
	}, map[string]string{"format": "pt"}, 8)
	seeds := [][]byte{
		valid,
		valid[:len(valid)-3],
		valid[:12],
		{},
		assemble([]byte(`{}`), nil),
		assemble([]byte(`{"__metadata__":null}`), nil),
		assemble([]byte(`{"x":{"dtype":"F16","shape":[9223372036854775807,2],"data_offsets":[0,4]}}`), make([]byte, 4)),
		assemble([]byte(`{"x":{"dtype":"I64","shape":[],"data_offsets":[0,8]},"y":{"dtype":"I32","shape":[1],"data_offsets":[4,8]}}`), make([]byte, 8)),
	}
	if b, err := os.ReadFile(filepath.Join(testdataDir, "reference", "llama-tiny", "model.safetensors")); err == nil && len(b) > 8 {
		if n := binary.LittleEndian.Uint64(b); n <= uint64(len(b)-8) {
			seeds = append(seeds, b[:8+n]) // the header alone: data missing
		}
	}
	return seeds
}

func FuzzReadHeader(f *testing.F) {
	for _, s := range headerSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ReadHeader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "loader: ") {
				t.Fatalf("error without package prefix: %v", err)
			}
			return
		}
		if h.DataStart < 10 || h.DataStart > int64(len(data)) {
			t.Fatalf("DataStart %d outside file of %d bytes", h.DataStart, len(data))
		}
		type span struct{ b, e int64 }
		var spans []span
		for i, ti := range h.Tensors {
			if i > 0 && h.Tensors[i-1].Name >= ti.Name {
				t.Fatal("tensors not sorted or duplicated")
			}
			if ti.Offset < h.DataStart || ti.Size < 0 || ti.Offset+ti.Size > int64(len(data)) {
				t.Fatalf("%s: [%d, +%d) outside the data area", ti.Name, ti.Offset, ti.Size)
			}
			n := int64(ti.DType.Size())
			for _, d := range ti.Shape {
				n *= int64(d)
			}
			if n != ti.Size {
				t.Fatalf("%s: size %d != shape %v × %s", ti.Name, ti.Size, ti.Shape, ti.DType)
			}
			if ti.Size > 0 {
				spans = append(spans, span{ti.Offset, ti.Offset + ti.Size})
			}
		}
		sort.Slice(spans, func(i, j int) bool { return spans[i].b < spans[j].b })
		for i := 1; i < len(spans); i++ {
			if spans[i].b < spans[i-1].e {
				t.Fatal("overlap accepted")
			}
		}
	})
}

func FuzzParseConfig(f *testing.F) {
	f.Add(cfg("llama", ""))
	f.Add(cfg("mistral", `"sliding_window": null, "rope_theta": 1e6`))
	f.Add(cfg("qwen2", `"layer_types": ["full_attention", "streaming_attention", "full_attention", "streaming_attention"], "lazy_layers": [1, 3]`))
	f.Add(cfg("qwen3", `"head_dim": 16, "eos_token_id": [1, 2]`))
	f.Add(`{"model_type":"qwen2littrans","num_hidden_layers":64}`)
	f.Add(cfg("llama", `"rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}`))
	f.Add(cfg("qwen2", `"rope_scaling": {"type": "yarn", "factor": 4.0, "mscale": 1, "mscale_all_dim": 1, "original_max_position_embeddings": 64}`))
	f.Add(cfg("llama", `"rope_scaling": {"type": "linear", "factor": 2.0}`))
	f.Add(`{"model_type": "llama", "num_attention_heads": 0}`)
	f.Add(`[]`)
	for _, d := range []string{"llama-tiny", "mistral-tiny", "qwen2-tiny"} {
		if b, err := os.ReadFile(filepath.Join(testdataDir, "reference", d, "config.json")); err == nil {
			f.Add(string(b))
		}
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseConfig(strings.NewReader(s))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "loader: ") {
				t.Fatalf("error without package prefix: %v", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("ParseConfig accepted a config Validate rejects: %v", err)
		}
		if c.HeadDim > 4096 {
			return // valid but slow to expand in a fuzz loop
		}
		inv, scale := c.RopeInvFreq()
		if len(inv) != c.HeadDim/2 {
			t.Fatalf("len(invFreq) = %d, HeadDim %d", len(inv), c.HeadDim)
		}
		for i, v := range inv {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) || v < 0 {
				t.Fatalf("invFreq[%d] = %v for %+v %+v", i, v, c, c.RopeScaling)
			}
		}
		if math.IsNaN(float64(scale)) || math.IsInf(float64(scale), 0) {
			t.Fatalf("attention scale %v", scale)
		}
	})
}

func FuzzIndex(f *testing.F) {
	f.Add([]byte(`{"metadata": {"total_size": 123}, "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}`))
	f.Add([]byte(`{"weight_map": {}}`))
	f.Add([]byte(`{"weight_map": {"a": "../evil"}}`))
	f.Add([]byte(`{"weight_map": {"a": 3}}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		idx, err := parseIndex(data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "loader: ") {
				t.Fatalf("error without package prefix: %v", err)
			}
			return
		}
		if len(idx.weightMap) == 0 || len(idx.files) == 0 {
			t.Fatal("empty index accepted")
		}
		if !sort.StringsAreSorted(idx.files) {
			t.Fatal("files not sorted")
		}
		for _, f := range idx.files {
			if !validShardName(f) || filepath.Base(f) != f {
				t.Fatalf("unsafe shard name %q accepted", f)
			}
		}
	})
}

func FuzzParseGenerationConfig(f *testing.F) {
	f.Add(`{"bos_token_id": 1, "eos_token_id": [2, 3], "do_sample": true, "temperature": 0.7, "top_p": 0.8, "top_k": 20, "repetition_penalty": 1.05}`)
	f.Add(`{"eos_token_id": 2}`)
	f.Add(`{}`)
	f.Add(`{"top_p": 2}`)
	f.Add(`"x"`)
	f.Fuzz(func(t *testing.T, s string) {
		g, err := ParseGenerationConfig(strings.NewReader(s))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "loader: ") {
				t.Fatalf("error without package prefix: %v", err)
			}
			return
		}
		if g.Temperature < 0 || g.TopP < 0 || g.TopP > 1 || g.TopK < 0 || !(g.RepetitionPenalty > 0) {
			t.Fatalf("out-of-range values accepted: %+v", g)
		}
		for _, id := range append(g.BOS, g.EOS...) {
			if id < 0 {
				t.Fatalf("negative token id accepted: %+v", g)
			}
		}
	})
}
