package train

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/lighttransfer/lighttransfer-go/loader"
)

// copiedFiles are the files of the input checkpoint a written checkpoint carries over.
var copiedFiles = []string{"tokenizer.json", "tokenizer_config.json", "generation_config.json",
	"special_tokens_map.json", "NOTICE"}

// SaveCheckpoint writes w as a Hugging Face checkpoint directory dir that model.Load opens in
// fixed mode: model.safetensors in each tensor's original dtype, src's config.json with
// lazy_layers, streaming_sink and streaming_window set from mask, and src's tokenizer files.
// It writes into a temporary directory beside dir and renames it into place, so dir is never
// left half written (an existing dir is replaced).
func SaveCheckpoint(dir, src string, w *Weights, mask Mask) error {
	if err := mask.Validate(w.Config.NumLayers); err != nil {
		return err
	}
	cfg, err := os.ReadFile(filepath.Join(src, loader.ConfigFile))
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	d := json.NewDecoder(bytes.NewReader(cfg))
	d.UseNumber()
	var doc map[string]any
	if err := d.Decode(&doc); err != nil {
		return fmt.Errorf("train: %s: %w", filepath.Join(src, loader.ConfigFile), err)
	}
	lazy := append([]int{}, mask.Lazy...)
	doc["lazy_layers"] = lazy
	doc["streaming_sink"] = mask.Sink
	doc["streaming_window"] = mask.Window
	delete(doc, "layer_types")
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	return writeDir(dir, func(tmp string) error {
		if err := os.WriteFile(filepath.Join(tmp, loader.ConfigFile), append(out, '\n'), 0o644); err != nil {
			return err
		}
		if err := writeSafetensors(filepath.Join(tmp, loader.SingleFile), w.Params, func(p *Param) loader.DType { return p.DType }); err != nil {
			return err
		}
		for _, f := range copiedFiles {
			b, err := os.ReadFile(filepath.Join(src, f))
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(tmp, f), b, 0o644); err != nil {
				return err
			}
		}
		return nil
	})
}

// writeDir fills a fresh temporary directory beside dir with fill and renames it to dir,
// replacing what was there only once the new one is complete.
func writeDir(dir string, fill func(tmp string) error) error {
	dir = filepath.Clean(dir)
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	if err := fill(tmp); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("train: writing %s: %w", dir, err)
	}
	old := ""
	if _, err := os.Stat(dir); err == nil {
		old = tmp + ".old"
		if err := os.Rename(dir, old); err != nil {
			os.RemoveAll(tmp)
			return fmt.Errorf("train: %w", err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		if old != "" {
			_ = os.Rename(old, dir)
		}
		os.RemoveAll(tmp)
		return fmt.Errorf("train: %w", err)
	}
	if old != "" {
		os.RemoveAll(old)
	}
	return nil
}

// stateFile is the JSON part of a resumable state.
type stateFile struct {
	Step     int     `json:"step"`
	AdamStep int     `json:"adam_step"`
	BestVal  float64 `json:"best_val"`
	Bad      int     `json:"bad"`
	HasBest  bool    `json:"has_best"`
}

// SaveState writes st to dir (weights, best weights and optimizer moments as float32
// safetensors plus state.json), atomically like SaveCheckpoint.
func SaveState(dir string, st *State) error {
	prefixed := func(prefix string, ws [][]float32) []*Param {
		var ps []*Param
		for i, p := range st.Weights.Params {
			ps = append(ps, &Param{Name: prefix + p.Name, Shape: p.Shape, Data: ws[i]})
		}
		return ps
	}
	var cur [][]float32
	for _, p := range st.Weights.Params {
		cur = append(cur, p.Data)
	}
	params := append(prefixed("w.", cur), prefixed("m.", st.Adam)...)
	params = append(params, prefixed("v.", st.AdamV)...)
	if st.Best != nil {
		var best [][]float32
		for _, p := range st.Best.Params {
			best = append(best, p.Data)
		}
		params = append(params, prefixed("best.", best)...)
	}
	bv := st.BestVal
	if math.IsInf(bv, 0) || math.IsNaN(bv) {
		bv = math.MaxFloat64
	}
	js, err := json.Marshal(stateFile{Step: st.Step, AdamStep: st.AdamStep, BestVal: bv, Bad: st.Bad, HasBest: st.Best != nil})
	if err != nil {
		return err
	}
	return writeDir(dir, func(tmp string) error {
		if err := writeSafetensors(filepath.Join(tmp, "state.safetensors"), params, func(*Param) loader.DType { return loader.F32 }); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(tmp, "state.json"), js, 0o644)
	})
}

// LoadState reads a state SaveState wrote for weights shaped like w. Errors wrap
// ErrCheckpoint.
func LoadState(dir string, w *Weights) (*State, error) {
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCheckpoint, err)
	}
	var sf stateFile
	if err := json.Unmarshal(b, &sf); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCheckpoint, filepath.Join(dir, "state.json"), err)
	}
	h, err := os.ReadFile(filepath.Join(dir, "state.safetensors"))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCheckpoint, err)
	}
	hdr, err := loader.ReadHeader(bytes.NewReader(h), int64(len(h)))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCheckpoint, err)
	}
	byName := map[string]loader.TensorInfo{}
	for _, t := range hdr.Tensors {
		byName[t.Name] = t
	}
	read := func(name string, n int) ([]float32, error) {
		t, ok := byName[name]
		if !ok || t.DType != loader.F32 || t.Size != int64(4*n) {
			return nil, fmt.Errorf("%w: %s: tensor %q missing or misshapen", ErrCheckpoint, dir, name)
		}
		out := make([]float32, n)
		raw := h[t.Offset : t.Offset+t.Size]
		for i := range out {
			out[i] = math.Float32frombits(uint32(raw[4*i]) | uint32(raw[4*i+1])<<8 | uint32(raw[4*i+2])<<16 | uint32(raw[4*i+3])<<24)
		}
		return out, nil
	}
	st := &State{Weights: w.Clone(), Step: sf.Step, AdamStep: sf.AdamStep, BestVal: sf.BestVal, Bad: sf.Bad}
	if sf.HasBest {
		st.Best = w.Clone()
	}
	for i, p := range w.Params {
		var err error
		if st.Weights.Params[i].Data, err = read("w."+p.Name, len(p.Data)); err != nil {
			return nil, err
		}
		m, err := read("m."+p.Name, len(p.Data))
		if err != nil {
			return nil, err
		}
		v, err := read("v."+p.Name, len(p.Data))
		if err != nil {
			return nil, err
		}
		st.Adam, st.AdamV = append(st.Adam, m), append(st.AdamV, v)
		if st.Best != nil {
			if st.Best.Params[i].Data, err = read("best."+p.Name, len(p.Data)); err != nil {
				return nil, err
			}
		}
	}
	return st, nil
}

// ParseLayers parses a comma-separated list of layer indices ("2,4"; empty: none).
func ParseLayers(s string) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("%w: lazy layer %q is not an integer", ErrConfig, f)
		}
		out = append(out, n)
	}
	return out, nil
}
