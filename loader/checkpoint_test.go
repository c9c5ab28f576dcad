package loader

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/lighttransfer/lighttransfer-go/internal/f16"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"testing/fstest"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// wantConfigs are the configs of the testdata checkpoints, as their files say
// (and Hugging Face's defaults for what they leave out).
var wantConfigs = map[string]Config{
	"llama-tiny": {ModelType: "llama", HiddenSize: 64, IntermediateSize: 160, NumLayers: 4, NumHeads: 4, NumKVHeads: 2,
		HeadDim: 16, VocabSize: 256, MaxPositions: 256, RMSNormEps: 1e-5, RopeTheta: 10000, HiddenAct: "silu",
		BOS: []int32{1}, EOS: []int32{2}, StreamingSink: 4, StreamingWindow: 1020},
	"mistral-tiny": {ModelType: "mistral", HiddenSize: 64, IntermediateSize: 160, NumLayers: 4, NumHeads: 4, NumKVHeads: 2,
		HeadDim: 16, VocabSize: 256, MaxPositions: 256, RMSNormEps: 1e-5, RopeTheta: 500000, HiddenAct: "silu",
		BOS: []int32{1}, EOS: []int32{2}, StreamingSink: 4, StreamingWindow: 1020},
	"qwen2-tiny": {ModelType: "qwen2", HiddenSize: 64, IntermediateSize: 160, NumLayers: 4, NumHeads: 4, NumKVHeads: 2,
		HeadDim: 16, VocabSize: 256, MaxPositions: 256, RMSNormEps: 1e-6, RopeTheta: 1e6, HiddenAct: "silu",
		TieEmbeddings: true, AttentionBias: true, BOS: []int32{1}, EOS: []int32{2}, StreamingSink: 4, StreamingWindow: 1020},
	"qwen2-tiny-bf16": {ModelType: "qwen2", HiddenSize: 64, IntermediateSize: 160, NumLayers: 4, NumHeads: 4, NumKVHeads: 2,
		HeadDim: 16, VocabSize: 256, MaxPositions: 256, RMSNormEps: 1e-6, RopeTheta: 1e6, HiddenAct: "silu",
		TieEmbeddings: true, AttentionBias: true, BOS: []int32{1}, EOS: []int32{2}, StreamingSink: 4, StreamingWindow: 1020},
	"qwen3-tiny": {ModelType: "qwen3", HiddenSize: 64, IntermediateSize: 160, NumLayers: 4, NumHeads: 4, NumKVHeads: 2,
		HeadDim: 32, VocabSize: 256, MaxPositions: 512, RMSNormEps: 1e-6, RopeTheta: 1e6, HiddenAct: "silu",
		TieEmbeddings: true, QKNorm: true, BOS: []int32{1}, EOS: []int32{2}, StreamingSink: 4, StreamingWindow: 1020},
	"stories260K": {ModelType: "llama", HiddenSize: 64, IntermediateSize: 172, NumLayers: 5, NumHeads: 8, NumKVHeads: 4,
		HeadDim: 8, VocabSize: 512, MaxPositions: 512, RMSNormEps: 1e-5, RopeTheta: 10000, HiddenAct: "silu",
		TieEmbeddings: true, BOS: []int32{1}, EOS: []int32{2}, StreamingSink: 4, StreamingWindow: 1020},
}

// expectedShapes lists the Hugging Face weight names and shapes a config implies.
func expectedShapes(c Config) map[string][]int {
	m := map[string][]int{
		"model.embed_tokens.weight": {c.VocabSize, c.HiddenSize},
		"model.norm.weight":         {c.HiddenSize},
	}
	if !c.TieEmbeddings {
		m["lm_head.weight"] = []int{c.VocabSize, c.HiddenSize}
	}
	q, kv := c.NumHeads*c.HeadDim, c.NumKVHeads*c.HeadDim
	for i := 0; i < c.NumLayers; i++ {
		p := fmt.Sprintf("model.layers.%d.", i)
		m[p+"input_layernorm.weight"] = []int{c.HiddenSize}
		m[p+"post_attention_layernorm.weight"] = []int{c.HiddenSize}
		m[p+"self_attn.q_proj.weight"] = []int{q, c.HiddenSize}
		m[p+"self_attn.k_proj.weight"] = []int{kv, c.HiddenSize}
		m[p+"self_attn.v_proj.weight"] = []int{kv, c.HiddenSize}
		m[p+"self_attn.o_proj.weight"] = []int{c.HiddenSize, q}
		m[p+"mlp.gate_proj.weight"] = []int{c.IntermediateSize, c.HiddenSize}
		m[p+"mlp.up_proj.weight"] = []int{c.IntermediateSize, c.HiddenSize}
		m[p+"mlp.down_proj.weight"] = []int{c.HiddenSize, c.IntermediateSize}
		if c.AttentionBias {
			m[p+"self_attn.q_proj.bias"] = []int{q}
			m[p+"self_attn.k_proj.bias"] = []int{kv}
			m[p+"self_attn.v_proj.bias"] = []int{kv}
		}
		if c.QKNorm {
			m[p+"self_attn.q_norm.weight"] = []int{c.HeadDim}
			m[p+"self_attn.k_norm.weight"] = []int{c.HeadDim}
		}
	}
	return m
}

// TestOpenReference opens every testdata checkpoint, checks its config, that it
// holds exactly the expected weights, and that Float32 returns the values
// stored in the file (decoded here independently from the raw file bytes).
func TestOpenReference(t *testing.T) {
	for _, dir := range referenceDirs(t) {
		name := filepath.Base(dir)
		t.Run(name, func(t *testing.T) {
			c, err := Open(dir)
			require.NoError(t, err)
			defer func() { require.NoError(t, c.Close()) }()
			assert.Equal(t, dir, c.Dir())
			want, ok := wantConfigs[name]
			require.True(t, ok, "no expected config for %s", name)
			assert.Equal(t, want, c.Config())
			assert.Equal(t, GenerationConfig{}, c.Generation())

			file, err := os.ReadFile(filepath.Join(dir, "model.safetensors"))
			require.NoError(t, err)
			shapes := expectedShapes(c.Config())
			infos := c.Tensors()
			require.Len(t, infos, len(shapes))
			for i, ti := range infos {
				if i > 0 {
					assert.Less(t, infos[i-1].Name, ti.Name, "Tensors not sorted")
				}
				assert.Equal(t, shapes[ti.Name], ti.Shape, ti.Name)
				assert.Equal(t, "model.safetensors", ti.File)
				got, ok := c.Tensor(ti.Name)
				require.True(t, ok)
				assert.Equal(t, ti, got)

				d, err := c.Float32(ti.Name)
				require.NoError(t, err, ti.Name)
				assert.Equal(t, ti.Shape, []int(d.Shape()), ti.Name)
				vals := d.Data().([]float32)
				raw := file[ti.Offset : ti.Offset+ti.Size]
				for j, v := range vals {
					var w float32
					switch ti.DType {
					case F32:
						w = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*j:]))
					case BF16:
						// bf16 widened is exactly its bits shifted into the high half.
						w = math.Float32frombits(uint32(binary.LittleEndian.Uint16(raw[2*j:])) << 16)
					default:
						t.Fatalf("%s: unexpected dtype %s", ti.Name, ti.DType)
					}
					if math.Float32bits(v) != math.Float32bits(w) {
						t.Fatalf("%s[%d] = %v, file has %v", ti.Name, j, v, w)
					}
				}
				b, dt, shape, err := c.Raw(ti.Name)
				require.NoError(t, err)
				assert.Equal(t, ti.DType, dt)
				assert.Equal(t, ti.Shape, shape)
				assert.Equal(t, raw, b)
				if dt == F32 {
					// Zero copy: the tensor's backing is the mapped bytes.
					assert.Equal(t, unsafe.Pointer(&b[0]), unsafe.Pointer(&vals[0]), "F32 tensor was copied")
				}
			}
			if name == "qwen2-tiny-bf16" {
				for _, ti := range infos {
					assert.Equal(t, BF16, ti.DType, ti.Name)
				}
			}
		})
	}
}

// TestBF16Widening checks that every widened qwen2-tiny-bf16 weight is
// exactly its raw bf16 bits shifted into the high half of a float32.
func TestBF16Widening(t *testing.T) {
	dir := filepath.Join(testdataDir, "reference", "qwen2-tiny-bf16")
	requireDir(t, dir)
	c, err := Open(dir)
	require.NoError(t, err)
	defer c.Close()
	for _, ti := range c.Tensors() {
		b, dt, _, err := c.Raw(ti.Name)
		require.NoError(t, err)
		require.Equal(t, BF16, dt)
		d, err := c.Float32(ti.Name)
		require.NoError(t, err)
		for j, v := range d.Data().([]float32) {
			bits := binary.LittleEndian.Uint16(b[2*j:])
			require.Equal(t, uint32(bits)<<16, math.Float32bits(v), "%s[%d]", ti.Name, j)
		}
	}
}

func TestF16Conversion(t *testing.T) {
	// Exhaustive: every half value against the defining formula in float64.
	for h := 0; h < 1<<16; h++ {
		got := f16.ToFloat32(uint16(h))
		sign := 1.0
		if h&0x8000 != 0 {
			sign = -1
		}
		e, m := (h>>10)&0x1f, h&0x3ff
		var want float64
		switch {
		case e == 0x1f && m == 0:
			want = math.Inf(int(sign))
		case e == 0x1f:
			if !math.IsNaN(float64(got)) {
				t.Fatalf("%#04x: got %v, want NaN", h, got)
			}
			continue
		case e == 0:
			want = sign * float64(m) * math.Pow(2, -24)
		default:
			want = sign * (1 + float64(m)/1024) * math.Pow(2, float64(e-15))
		}
		if float64(got) != want || math.Signbit(float64(got)) != (sign < 0) {
			t.Fatalf("%#04x: got %v, want %v", h, got, want)
		}
	}
}

// TestDTypes covers the conversions of Float32 and the Raw view of every dtype,
// including misaligned F32 data (which must be copied) and a scalar.
func TestDTypes(t *testing.T) {
	f32 := func(vs ...float32) []byte {
		b := make([]byte, 4*len(vs))
		for i, v := range vs {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
		}
		return b
	}
	f64 := make([]byte, 16)
	binary.LittleEndian.PutUint64(f64, math.Float64bits(0.5))
	binary.LittleEndian.PutUint64(f64[8:], math.Float64bits(-3))
	f16 := []byte{0x00, 0x3c, 0x00, 0xc0}  // 1, -2
	bf16 := []byte{0x80, 0x3f, 0x40, 0xc0} // 1, -3
	tensors := []wTensor{
		{"a.f16", "F16", []int{2}, f16},
		{"b.f32", "F32", []int{2, 2}, f32(1, 2, 3, 4)},
		{"c.bf16", "BF16", []int{1, 2}, bf16},
		{"d.f64", "F64", []int{2}, f64},
		{"e.i8", "I8", []int{3}, []byte{1, 2, 3}},
		{"f.scalar", "F32", []int{}, f32(7)},
		{"g.empty", "F32", []int{0, 4}, nil},
	}
	for _, align := range []int{1, 8} {
		for _, pad := range []int{0, 1, 2, 3} {
			// A one-byte tensor shifts the following data off 4-byte alignment.
			ts := append([]wTensor{{"0.pad", "U8", []int{pad}, make([]byte, pad)}}, tensors...)
			fsys := fstest.MapFS{
				"config.json":       {Data: []byte(`{"model_type":"llama","hidden_size":8,"num_attention_heads":2,"num_hidden_layers":1,"intermediate_size":8,"vocab_size":4}`)},
				"model.safetensors": {Data: writeSafetensors(t, ts, map[string]string{"format": "pt"}, align)},
			}
			c, err := OpenFS(fsys)
			require.NoError(t, err)
			check := func(name string, shape []int, want ...float32) {
				d, err := c.Float32(name)
				require.NoError(t, err, name)
				assert.Equal(t, shape, []int(d.Shape()), name)
				assert.Equal(t, want, d.Data().([]float32), name)
			}
			check("a.f16", []int{2}, 1, -2)
			check("b.f32", []int{2, 2}, 1, 2, 3, 4)
			check("c.bf16", []int{1, 2}, 1, -3)
			check("d.f64", []int{2}, 0.5, -3)
			check("f.scalar", []int{1}, 7)
			_, err = c.Float32("e.i8")
			assert.ErrorIs(t, err, ErrDType)
			assert.ErrorContains(t, err, "e.i8")
			_, err = c.Float32("g.empty")
			assert.ErrorIs(t, err, ErrShape)
			b, dt, shape, err := c.Raw("g.empty")
			require.NoError(t, err)
			assert.Equal(t, F32, dt)
			assert.Equal(t, []int{0, 4}, shape)
			assert.Empty(t, b)
			b, dt, _, err = c.Raw("e.i8")
			require.NoError(t, err)
			assert.Equal(t, I8, dt)
			assert.Equal(t, []byte{1, 2, 3}, b)
			require.NoError(t, c.Close())
			_, err = c.Float32("b.f32")
			assert.ErrorIs(t, err, fs.ErrClosed)
			require.NoError(t, c.Close())
		}
	}
}

func TestDTypeNames(t *testing.T) {
	for d := F32; d <= Bool; d++ {
		p, ok := parseDType(d.String())
		assert.True(t, ok)
		assert.Equal(t, d, p)
		assert.Positive(t, d.Size())
	}
	assert.Equal(t, "BOOL", Bool.String())
	assert.Equal(t, "DType(0)", DType(0).String())
	assert.Equal(t, 0, DType(200).Size())
	assert.Equal(t, "DType(200)", DType(200).String())
}

// TestSharded splits llama-tiny's tensors over two shard files with an index
// and checks that every tensor reads back identically to the single file.
func TestSharded(t *testing.T) {
	src := filepath.Join(testdataDir, "reference", "llama-tiny")
	requireDir(t, src)
	single, err := Open(src)
	require.NoError(t, err)
	defer single.Close()

	dir := copyCheckpoint(t, src, nil)
	infos := single.Tensors()
	shards := [2][]wTensor{}
	weightMap := map[string]string{}
	names := [2]string{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}
	for i, ti := range infos {
		b, _, _, err := single.Raw(ti.Name)
		require.NoError(t, err)
		s := i % 2 // interleave so both shards hold tensors of every kind
		shards[s] = append(shards[s], wTensor{ti.Name, ti.DType.String(), ti.Shape, b})
		weightMap[ti.Name] = names[s]
	}
	for s := range shards {
		// Shard 0 gets an unaligned header so its F32 data must be copied.
		align := []int{1, 8}[s]
		must(t, os.WriteFile(filepath.Join(dir, names[s]), writeSafetensors(t, shards[s], nil, align), 0o644))
	}
	idx, err := json.Marshal(map[string]any{"metadata": map[string]any{"total_size": 1}, "weight_map": weightMap})
	require.NoError(t, err)
	must(t, os.WriteFile(filepath.Join(dir, IndexFile), idx, 0o644))

	c, err := Open(dir)
	require.NoError(t, err)
	defer c.Close()
	assert.Equal(t, single.Config(), c.Config())
	got := c.Tensors()
	require.Len(t, got, len(infos))
	for i, ti := range got {
		want := infos[i]
		assert.Equal(t, want.Name, ti.Name)
		assert.Equal(t, want.DType, ti.DType)
		assert.Equal(t, want.Shape, ti.Shape)
		assert.Equal(t, weightMap[ti.Name], ti.File)
		a, err := single.Float32(ti.Name)
		require.NoError(t, err)
		b, err := c.Float32(ti.Name)
		require.NoError(t, err)
		assert.Equal(t, a.Shape(), b.Shape(), ti.Name)
		assert.Equal(t, a.Data(), b.Data(), ti.Name)
	}

	// A tensor the index names but its shard lacks: ErrNotFound naming both.
	weightMap["model.extra.weight"] = names[1]
	idx, _ = json.Marshal(map[string]any{"weight_map": weightMap})
	must(t, os.WriteFile(filepath.Join(dir, IndexFile), idx, 0o644))
	_, err = Open(dir)
	assert.ErrorIs(t, err, ErrNotFound)
	assert.ErrorContains(t, err, "model.extra.weight")
	assert.ErrorContains(t, err, names[1])

	// A shard the index names that does not exist.
	weightMap["model.extra.weight"] = "model-00003-of-00002.safetensors"
	idx, _ = json.Marshal(map[string]any{"weight_map": weightMap})
	must(t, os.WriteFile(filepath.Join(dir, IndexFile), idx, 0o644))
	_, err = Open(dir)
	assert.ErrorIs(t, err, ErrNotFound)
	assert.ErrorContains(t, err, "model-00003-of-00002.safetensors")

	// A tensor mapped to the wrong shard.
	delete(weightMap, "model.extra.weight")
	weightMap[infos[0].Name] = names[1]
	idx, _ = json.Marshal(map[string]any{"weight_map": weightMap})
	must(t, os.WriteFile(filepath.Join(dir, IndexFile), idx, 0o644))
	_, err = Open(dir)
	assert.ErrorIs(t, err, ErrFormat)
	assert.ErrorContains(t, err, infos[0].Name)

	// A shard path escaping the directory.
	weightMap[infos[0].Name] = "../x.safetensors"
	idx, _ = json.Marshal(map[string]any{"weight_map": weightMap})
	must(t, os.WriteFile(filepath.Join(dir, IndexFile), idx, 0o644))
	_, err = Open(dir)
	assert.ErrorIs(t, err, ErrFormat)
	assert.ErrorContains(t, err, IndexFile)
}

// TestOpenFS reads a checkpoint through fs.FS (in memory) with a
// generation_config.json.
func TestOpenFS(t *testing.T) {
	dir := filepath.Join(testdataDir, "reference", "llama-tiny")
	requireDir(t, dir)
	fsys := fstest.MapFS{}
	for _, f := range []string{"config.json", "model.safetensors"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		require.NoError(t, err)
		fsys[f] = &fstest.MapFile{Data: b}
	}
	fsys[GenerationConfigFile] = &fstest.MapFile{Data: []byte(`{"bos_token_id": 1, "eos_token_id": [2, 7], "do_sample": true, "temperature": 0.6, "top_p": 0.95}`)}
	c, err := OpenFS(fsys)
	require.NoError(t, err)
	defer c.Close()
	assert.Equal(t, ".", c.Dir())
	assert.Equal(t, GenerationConfig{BOS: []int32{1}, EOS: []int32{2, 7}, Temperature: 0.6, TopP: 0.95, TopK: 50,
		DoSample: true, RepetitionPenalty: 1}, c.Generation())
	m, err := Open(dir)
	require.NoError(t, err)
	defer m.Close()
	for _, ti := range m.Tensors() {
		a, err := m.Float32(ti.Name)
		require.NoError(t, err)
		b, err := c.Float32(ti.Name)
		require.NoError(t, err)
		assert.Equal(t, a.Data(), b.Data())
	}

	fsys[GenerationConfigFile] = &fstest.MapFile{Data: []byte(`{"top_p": 2}`)}
	_, err = OpenFS(fsys)
	assert.ErrorIs(t, err, ErrFormat)
	assert.ErrorContains(t, err, GenerationConfigFile)
	assert.ErrorContains(t, err, "top_p")
}

// TestConcurrentReads reads every tensor from many goroutines at once (run
// with -race) while nothing writes.
func TestConcurrentReads(t *testing.T) {
	dir := filepath.Join(testdataDir, "reference", "qwen2-tiny-bf16")
	requireDir(t, dir)
	c, err := Open(dir)
	require.NoError(t, err)
	defer c.Close()
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, ti := range c.Tensors() {
				if _, err := c.Float32(ti.Name); err != nil {
					t.Error(err)
				}
				if _, _, _, err := c.Raw(ti.Name); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
}

// TestOpenErrors covers missing files and damaged copies of llama-tiny: each
// gives the right sentinel and names the file and, where there is one, the tensor.
func TestOpenErrors(t *testing.T) {
	src := filepath.Join(testdataDir, "reference", "llama-tiny")
	requireDir(t, src)
	orig, err := os.ReadFile(filepath.Join(src, "model.safetensors"))
	require.NoError(t, err)
	hdr0, data := splitFile(t, orig)
	names := tensorNames(hdr0)
	first, second := names[0], names[1]
	edit := func(f func(h map[string]any)) []byte {
		var h map[string]any
		b, _ := json.Marshal(hdr0)
		_ = json.Unmarshal(b, &h)
		f(h)
		return rebuild(t, h, data)
	}
	entry := func(h map[string]any, name string) map[string]any { return h[name].(map[string]any) }
	withLen := func(n uint64) []byte {
		b := append([]byte(nil), orig...)
		binary.LittleEndian.PutUint64(b, n)
		return b
	}

	cases := []struct {
		name    string
		weights []byte
		want    error
		tensor  string // must appear in the message ("" : none)
	}{
		{"truncated data", orig[:len(orig)-100], ErrFormat, names[len(names)-1]},
		{"truncated header", orig[:40], ErrFormat, ""},
		{"shorter than prefix", orig[:5], ErrFormat, ""},
		{"empty file", []byte{}, ErrFormat, ""},
		{"header length too big", withLen(1 << 40), ErrFormat, ""},
		{"header length past end", withLen(uint64(len(orig))), ErrFormat, ""},
		{"header length too small", withLen(10), ErrFormat, ""},
		{"not json", assemble([]byte("{not json}"), data), ErrFormat, ""},
		{"trailing garbage", assemble(append(mustJSON(t, hdr0), []byte(" x")...), data), ErrFormat, ""},
		{"overlapping offsets", edit(func(h map[string]any) {
			entry(h, second)["data_offsets"] = entry(h, first)["data_offsets"]
			entry(h, second)["shape"] = entry(h, first)["shape"]
		}), ErrFormat, second},
		{"shape mismatch", edit(func(h map[string]any) {
			entry(h, first)["shape"] = []int{3, 5}
		}), ErrShape, first},
		{"shape overflow", edit(func(h map[string]any) {
			entry(h, first)["shape"] = []int64{1 << 40, 1 << 40}
		}), ErrShape, first},
		{"unknown dtype", edit(func(h map[string]any) { entry(h, first)["dtype"] = "F8_E4M3" }), ErrDType, first},
		{"begin after end", edit(func(h map[string]any) { entry(h, first)["data_offsets"] = []int{8, 4} }), ErrFormat, first},
		{"negative offset", edit(func(h map[string]any) { entry(h, first)["data_offsets"] = []int{-4, 4} }), ErrFormat, first},
		{"offsets past data", edit(func(h map[string]any) {
			entry(h, first)["data_offsets"] = []int{len(data), len(data) + 4}
			entry(h, first)["shape"] = []int{1}
		}), ErrFormat, first},
		{"three offsets", edit(func(h map[string]any) { entry(h, first)["data_offsets"] = []int{0, 4, 8} }), ErrFormat, first},
		{"missing dtype", edit(func(h map[string]any) { delete(entry(h, first), "dtype") }), ErrFormat, first},
		{"negative dim", edit(func(h map[string]any) { entry(h, first)["shape"] = []int{-1, 4} }), ErrFormat, first},
		{"fractional dim", edit(func(h map[string]any) { entry(h, first)["shape"] = []float64{1.5} }), ErrFormat, first},
		{"metadata not strings", edit(func(h map[string]any) { h["__metadata__"] = map[string]any{"n": 1} }), ErrFormat, ""},
		{"duplicate key", assemble([]byte(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`), data), ErrFormat, "a"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyCheckpoint(t, src, tc.weights)
			_, err := Open(dir)
			require.Error(t, err)
			assert.ErrorIs(t, err, tc.want)
			var fe *FormatError
			require.ErrorAs(t, err, &fe)
			assert.Contains(t, fe.File, "model.safetensors")
			assert.ErrorContains(t, err, "model.safetensors")
			if tc.tensor != "" {
				assert.ErrorContains(t, err, tc.tensor)
			}
			assert.Regexp(t, `^loader: `, err.Error())
			t.Log(err)
		})
	}

	t.Run("tensor dropped", func(t *testing.T) {
		dir := copyCheckpoint(t, src, edit(func(h map[string]any) { delete(h, first) }))
		c, err := Open(dir)
		require.NoError(t, err) // a gap in the data area is allowed
		defer c.Close()
		_, ok := c.Tensor(first)
		assert.False(t, ok)
		_, err = c.Float32(first)
		assert.ErrorIs(t, err, ErrNotFound)
		assert.ErrorContains(t, err, first)
		assert.ErrorContains(t, err, "model.safetensors")
		_, _, _, err = c.Raw(first)
		assert.ErrorIs(t, err, ErrNotFound)
	})
	t.Run("no config", func(t *testing.T) {
		dir := t.TempDir()
		_, err := Open(dir)
		assert.ErrorIs(t, err, ErrNotFound)
		assert.ErrorContains(t, err, "config.json")
	})
	t.Run("no weights", func(t *testing.T) {
		_, err := Open(copyCheckpoint(t, src, nil))
		assert.ErrorIs(t, err, ErrNotFound)
		assert.ErrorContains(t, err, "model.safetensors")
	})
	t.Run("bad config", func(t *testing.T) {
		dir := copyCheckpoint(t, src, orig)
		must(t, os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"model_type":"llama","hidden_act":"gelu"}`), 0o644))
		_, err := Open(dir)
		assert.ErrorIs(t, err, ErrUnsupported)
		assert.ErrorContains(t, err, "config.json")
		assert.ErrorContains(t, err, "hidden_act")
	})
	t.Run("weights is a directory", func(t *testing.T) {
		dir := copyCheckpoint(t, src, nil)
		must(t, os.Mkdir(filepath.Join(dir, "model.safetensors"), 0o755))
		_, err := Open(dir)
		assert.Error(t, err)
		assert.False(t, errors.Is(err, ErrUnsupported))
	})
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
