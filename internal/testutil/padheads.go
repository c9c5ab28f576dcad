package testutil

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// PadHeads writes to dst (an existing directory) a checkpoint that computes the same function
// as the float32 Llama-family checkpoint in src, with every attention head widened from its
// head_dim D to headDim (P) elements and every query head repeated copies times, so tests can
// drive code paths that need a wider head or more query heads per KV head (the decode path
// needs 5 to 8, the integer Q8 route a head width that is a multiple of 32) with trained
// weights. It copies tokenizer.json and tokenizer_config.json when src has them.
//
// The construction, exact in real arithmetic and exact in float32 up to summation order:
//
//   - Element d of a head goes to position d (d < D/2) or P/2 + d − D/2 (d >= D/2) of the wide
//     head, the other positions hold zeros: q_proj, k_proj and v_proj rows (and their biases)
//     and o_proj columns. RoPE pairs element i with i + headDim/2, so the original pairs stay
//     pairs.
//   - rope_theta becomes θ^(P/D): the inverse frequency of pair i, θ'^(−2i/P), then equals
//     θ^(−2i/D) for the D/2 pairs that hold data (the other pairs rotate zeros).
//   - q_proj rows (and bias) are multiplied by sqrt(P/D), which must be a power of two so the
//     product is exact, undoing the change of the softmax scale 1/sqrt(head_dim).
//   - Query head j of KV head k becomes heads k·G·copies + c·G + j for c < copies (G the
//     original query heads per KV head): copy c = 0 carries the head's o_proj columns, the other
//     copies attend exactly like it and their o_proj columns are zero. Copies keep the mean over
//     query heads (the lazy ratio) of the original heads.
//
// PadHeads returns an error for a src it cannot widen exactly: weights other than F32,
// rope_scaling, partial_rotary_factor other than 1, per-head q/k norms, headDim not a
// multiple of D with a power-of-two square root of headDim/D, copies < 1.
func PadHeads(dst, src string, headDim, copies int) error {
	cfgPath := filepath.Join(src, "config.json")
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var cfg map[string]any
	if err := dec.Decode(&cfg); err != nil {
		return fmt.Errorf("testutil: PadHeads: %s: %w", cfgPath, err)
	}
	num := func(key string, def float64) (float64, error) {
		v, ok := cfg[key]
		if !ok || v == nil {
			return def, nil
		}
		n, ok := v.(json.Number)
		if !ok {
			return 0, fmt.Errorf("testutil: PadHeads: %s: %s is not a number", cfgPath, key)
		}
		return n.Float64()
	}
	hidden, err := num("hidden_size", 0)
	if err != nil {
		return err
	}
	heads, err := num("num_attention_heads", 0)
	if err != nil {
		return err
	}
	kvHeads, err := num("num_key_value_heads", heads)
	if err != nil {
		return err
	}
	if heads <= 0 || kvHeads <= 0 || int(heads)%int(kvHeads) != 0 {
		return fmt.Errorf("testutil: PadHeads: %s: bad num_attention_heads %v / num_key_value_heads %v", cfgPath, heads, kvHeads)
	}
	d0, err := num("head_dim", hidden/heads)
	if err != nil {
		return err
	}
	theta, err := num("rope_theta", 10000)
	if err != nil {
		return err
	}
	prf, err := num("partial_rotary_factor", 1)
	if err != nil {
		return err
	}
	if v := cfg["rope_scaling"]; v != nil {
		return fmt.Errorf("testutil: PadHeads: %s: rope_scaling %v is not supported", cfgPath, v)
	}
	if prf != 1 {
		return fmt.Errorf("testutil: PadHeads: %s: partial_rotary_factor %v is not supported", cfgPath, prf)
	}
	D, H, KVH, P := int(d0), int(heads), int(kvHeads), headDim
	if D <= 0 || D%2 != 0 || P < D || P%D != 0 || copies < 1 {
		return fmt.Errorf("testutil: PadHeads: head_dim %d to %d with %d copies: want an even head_dim, headDim a multiple of it, copies >= 1", D, P, copies)
	}
	qs := math.Sqrt(float64(P / D))
	if qs != math.Trunc(qs) || int(qs)&(int(qs)-1) != 0 {
		return fmt.Errorf("testutil: PadHeads: headDim/head_dim = %d: its square root must be a power of two", P/D)
	}
	G := H / KVH
	cfg["head_dim"] = P
	cfg["num_attention_heads"] = H * copies
	cfg["rope_theta"] = math.Pow(theta, float64(P/D))

	tensors, err := ReadSafetensors(filepath.Join(src, "model.safetensors"))
	if err != nil {
		return err
	}
	pos := func(d int) int { // position of element d of a head in the wide head
		if d < D/2 {
			return d
		}
		return P/2 + d - D/2
	}
	// src returns the original query head a wide query head copies and whether it carries
	// the o_proj columns.
	srcHead := func(h int) (int, bool) {
		k, r := h/(G*copies), h%(G*copies)
		return k*G + r%G, r < G
	}
	for i, t := range tensors {
		if !strings.Contains(t.Name, ".self_attn.") {
			continue
		}
		if t.DType != "F32" {
			return fmt.Errorf("testutil: PadHeads: tensor %s: dtype %s (only F32)", t.Name, t.DType)
		}
		x := f32s(t.Data)
		name := t.Name[strings.LastIndex(t.Name, ".self_attn.")+len(".self_attn."):]
		var out []float32
		var shape []int
		switch name {
		case "q_proj.weight", "q_proj.bias", "k_proj.weight", "k_proj.bias", "v_proj.weight", "v_proj.bias":
			cols := 1
			if strings.HasSuffix(name, ".weight") {
				cols = t.Shape[1]
			}
			nh, scale := KVH, float32(1)
			if name[0] == 'q' {
				nh, scale = H*copies, float32(qs)
			}
			srcHeads := KVH
			if name[0] == 'q' {
				srcHeads = H
			}
			if len(x) != srcHeads*D*cols {
				return fmt.Errorf("testutil: PadHeads: tensor %s: shape %v does not match %d heads of %d", t.Name, t.Shape, H, D)
			}
			out = make([]float32, nh*P*cols)
			for h := range nh {
				sh := h
				if name[0] == 'q' {
					sh, _ = srcHead(h)
				}
				for d := range D {
					dstRow := out[(h*P+pos(d))*cols:][:cols]
					for c, v := range x[(sh*D+d)*cols:][:cols] {
						dstRow[c] = scale * v
					}
				}
			}
			shape = []int{nh * P}
			if cols > 1 {
				shape = append(shape, cols)
			}
		case "o_proj.weight":
			rows, in := t.Shape[0], t.Shape[1]
			if in != H*D {
				return fmt.Errorf("testutil: PadHeads: tensor %s: shape %v does not match %d heads of %d", t.Name, t.Shape, H, D)
			}
			wide := H * copies * P
			out = make([]float32, rows*wide)
			for h := range H * copies {
				sh, carries := srcHead(h)
				if !carries {
					continue
				}
				for r := range rows {
					for d := range D {
						out[r*wide+h*P+pos(d)] = x[r*in+sh*D+d]
					}
				}
			}
			shape = []int{rows, wide}
		case "o_proj.bias":
			continue
		default:
			return fmt.Errorf("testutil: PadHeads: tensor %s is not supported", t.Name)
		}
		tensors[i] = Tensor{Name: t.Name, DType: "F32", Shape: shape, Data: f32Bytes(out)}
	}
	nb, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dst, "config.json"), nb, 0o644); err != nil {
		return err
	}
	for _, f := range []string{"tokenizer.json", "tokenizer_config.json"} {
		if _, err := os.Stat(filepath.Join(src, f)); err == nil {
			if err := CopyFile(filepath.Join(dst, f), filepath.Join(src, f)); err != nil {
				return err
			}
		}
	}
	return WriteSafetensors(filepath.Join(dst, "model.safetensors"), tensors)
}

func f32s(b []byte) []float32 {
	x := make([]float32, len(b)/4)
	for i := range x {
		x[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return x
}

func f32Bytes(x []float32) []byte {
	b := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}
