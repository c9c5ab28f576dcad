package train

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"github.com/lighttransfer/lighttransfer-go/internal/f16"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"

	"github.com/lighttransfer/lighttransfer-go/loader"
)

// Param is one trainable tensor: its Hugging Face name, shape, float32 values and the dtype
// the checkpoint stored it in (the dtype it is written back in).
type Param struct {
	Name  string
	Shape []int
	Data  []float32
	DType loader.DType
}

// Weights are a checkpoint's parameters in float32, in a fixed order (embedding, then each
// layer, the final norm and an untied LM head). A tied LM head is the embedding itself.
type Weights struct {
	Config loader.Config
	Params []*Param
	byName map[string]*Param
}

// layerNames lists the tensors of decoder layer i the Llama family has under cfg.
func layerNames(cfg loader.Config, i int) []string {
	p := "model.layers." + strconv.Itoa(i) + "."
	names := []string{p + "input_layernorm.weight", p + "self_attn.q_proj.weight", p + "self_attn.k_proj.weight",
		p + "self_attn.v_proj.weight"}
	if cfg.AttentionBias {
		names = append(names, p+"self_attn.q_proj.bias", p+"self_attn.k_proj.bias", p+"self_attn.v_proj.bias")
	}
	return append(names, p+"self_attn.o_proj.weight", p+"post_attention_layernorm.weight",
		p+"mlp.gate_proj.weight", p+"mlp.up_proj.weight", p+"mlp.down_proj.weight")
}

// paramNames lists every trainable tensor of cfg in the Weights order.
func paramNames(cfg loader.Config) []string {
	names := []string{"model.embed_tokens.weight"}
	for i := range cfg.NumLayers {
		names = append(names, layerNames(cfg, i)...)
	}
	names = append(names, "model.norm.weight")
	if !cfg.TieEmbeddings {
		names = append(names, "lm_head.weight")
	}
	return names
}

// expectedShape returns the shape tensor name must have under cfg.
func expectedShape(cfg loader.Config, name string) []int {
	h, inter := cfg.HiddenSize, cfg.IntermediateSize
	qd, kvd := cfg.NumHeads*cfg.HeadDim, cfg.NumKVHeads*cfg.HeadDim
	base := filepath.Ext(name[:len(name)-len(filepath.Ext(name))]) // ".q_proj" etc.
	switch {
	case name == "model.embed_tokens.weight" || name == "lm_head.weight":
		return []int{cfg.VocabSize, h}
	case name == "model.norm.weight", base == ".input_layernorm", base == ".post_attention_layernorm":
		return []int{h}
	}
	isBias := filepath.Ext(name) == ".bias"
	switch base {
	case ".q_proj":
		if isBias {
			return []int{qd}
		}
		return []int{qd, h}
	case ".k_proj", ".v_proj":
		if isBias {
			return []int{kvd}
		}
		return []int{kvd, h}
	case ".o_proj":
		return []int{h, qd}
	case ".gate_proj", ".up_proj":
		return []int{inter, h}
	case ".down_proj":
		return []int{h, inter}
	}
	return nil
}

// LoadWeights reads the trainable parameters of the checkpoint in dir as float32. Qwen3's
// q/k norms are not supported (ErrUnsupported); a missing or misshapen tensor is an error
// naming it.
func LoadWeights(dir string) (*Weights, error) {
	ck, err := loader.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	defer ck.Close()
	cfg := ck.Config()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("train: %s: %w", dir, err)
	}
	if cfg.QKNorm {
		return nil, fmt.Errorf("%w: %s: model type %q has q/k norms", ErrUnsupported, dir, cfg.ModelType)
	}
	w := &Weights{Config: cfg, byName: map[string]*Param{}}
	for _, name := range paramNames(cfg) {
		info, ok := ck.Tensor(name)
		if !ok {
			return nil, fmt.Errorf("train: %s: tensor %q: %w", dir, name, loader.ErrNotFound)
		}
		want := expectedShape(cfg, name)
		if !slices.Equal(info.Shape, want) {
			return nil, fmt.Errorf("train: %s: tensor %q has shape %v, want %v: %w", dir, name, info.Shape, want, loader.ErrShape)
		}
		d, err := ck.Float32(name)
		if err != nil {
			return nil, fmt.Errorf("train: %s: %w", dir, err)
		}
		p := &Param{Name: name, Shape: slices.Clone(info.Shape), DType: info.DType,
			Data: slices.Clone(d.Data().([]float32))}
		w.Params = append(w.Params, p)
		w.byName[name] = p
	}
	return w, nil
}

// Param returns the parameter called name, or nil.
func (w *Weights) Param(name string) *Param { return w.byName[name] }

// Clone returns a deep copy of w.
func (w *Weights) Clone() *Weights {
	c := &Weights{Config: w.Config, byName: map[string]*Param{}}
	for _, p := range w.Params {
		q := *p
		q.Shape, q.Data = slices.Clone(p.Shape), slices.Clone(p.Data)
		c.Params = append(c.Params, &q)
		c.byName[q.Name] = &q
	}
	return c
}

// encode returns the little-endian bytes of x in dtype dt (F32, BF16 or F16, rounded to
// nearest even).
func encode(x []float32, dt loader.DType) ([]byte, error) {
	switch dt {
	case loader.F32:
		b := make([]byte, 4*len(x))
		for i, v := range x {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
		}
		return b, nil
	case loader.BF16:
		b := make([]byte, 2*len(x))
		for i, v := range x {
			binary.LittleEndian.PutUint16(b[2*i:], toBF16(v))
		}
		return b, nil
	case loader.F16:
		b := make([]byte, 2*len(x))
		for i, v := range x {
			binary.LittleEndian.PutUint16(b[2*i:], f16.FromFloat32(v))
		}
		return b, nil
	}
	return nil, fmt.Errorf("%w: cannot write dtype %v", ErrUnsupported, dt)
}

// toBF16 rounds x to the nearest bfloat16 (ties to even), keeping NaN a NaN.
func toBF16(x float32) uint16 {
	u := math.Float32bits(x)
	if u&0x7fffffff > 0x7f800000 {
		return uint16(u>>16) | 0x40
	}
	u += 0x7fff + (u>>16)&1
	return uint16(u >> 16)
}

// writeSafetensors writes named tensors to path in their dtypes (header keys sorted).
func writeSafetensors(path string, params []*Param, dtype func(*Param) loader.DType) error {
	type entry struct {
		DType   string   `json:"dtype"`
		Shape   []int    `json:"shape"`
		Offsets [2]int64 `json:"data_offsets"`
	}
	sorted := slices.Clone(params)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	hdr := map[string]any{"__metadata__": map[string]string{"format": "pt"}}
	var blobs [][]byte
	var off int64
	for _, p := range sorted {
		dt := dtype(p)
		b, err := encode(p.Data, dt)
		if err != nil {
			return fmt.Errorf("train: tensor %q: %w", p.Name, err)
		}
		hdr[p.Name] = entry{DType: dt.String(), Shape: p.Shape, Offsets: [2]int64{off, off + int64(len(b))}}
		off += int64(len(b))
		blobs = append(blobs, b)
	}
	h, err := json.Marshal(hdr)
	if err != nil {
		return err
	}
	for len(h)%8 != 0 {
		h = append(h, ' ')
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(h)))
	_, err = f.Write(n[:])
	if err == nil {
		_, err = f.Write(h)
	}
	for _, b := range blobs {
		if err == nil {
			_, err = f.Write(b)
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("train: writing %s: %w", path, err)
	}
	return nil
}
