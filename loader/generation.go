package loader

import (
	"fmt"
	"io"
)

// GenerationConfig is a checkpoint's generation_config.json. ParseGenerationConfig
// fills Hugging Face's GenerationConfig defaults for absent keys: Temperature
// 1, TopP 1, TopK 50, DoSample false, RepetitionPenalty 1, no BOS/EOS.
type GenerationConfig struct {
	BOS               []int32 // bos_token_id (number or list)
	EOS               []int32 // eos_token_id (number or list): generation stops at any of them
	Temperature       float64 // temperature, >= 0
	TopP              float64 // top_p, in [0, 1]
	TopK              int     // top_k, >= 0 (0: no top-k filter)
	DoSample          bool    // do_sample: false means greedy decoding
	RepetitionPenalty float64 // repetition_penalty, > 0 (1: none)
}

// ParseGenerationConfig reads a generation_config.json. Malformed or
// out-of-range values give ErrFormat errors naming the key.
func ParseGenerationConfig(r io.Reader) (GenerationConfig, error) {
	o, err := readObject(r, "generation config")
	if err != nil {
		return GenerationConfig{}, err
	}
	var g GenerationConfig
	if g.BOS, err = o.tokenIDs("bos_token_id", nil); err != nil {
		return GenerationConfig{}, err
	}
	if g.EOS, err = o.tokenIDs("eos_token_id", nil); err != nil {
		return GenerationConfig{}, err
	}
	if g.Temperature, err = o.float("temperature", 1); err != nil {
		return GenerationConfig{}, err
	}
	if g.TopP, err = o.float("top_p", 1); err != nil {
		return GenerationConfig{}, err
	}
	if g.TopK, err = o.integer("top_k", 50); err != nil {
		return GenerationConfig{}, err
	}
	if g.DoSample, err = o.boolean("do_sample", false); err != nil {
		return GenerationConfig{}, err
	}
	if g.RepetitionPenalty, err = o.float("repetition_penalty", 1); err != nil {
		return GenerationConfig{}, err
	}
	bad := func(key string, v any, want string) error {
		return &FormatError{Key: key, Msg: fmt.Sprintf("%s %v: want %s", key, v, want), Err: ErrFormat}
	}
	switch {
	case g.Temperature < 0:
		return GenerationConfig{}, bad("temperature", g.Temperature, ">= 0")
	case g.TopP < 0 || g.TopP > 1:
		return GenerationConfig{}, bad("top_p", g.TopP, "a value in [0, 1]")
	case g.TopK < 0:
		return GenerationConfig{}, bad("top_k", g.TopK, ">= 0")
	case !(g.RepetitionPenalty > 0):
		return GenerationConfig{}, bad("repetition_penalty", g.RepetitionPenalty, "> 0")
	}
	return g, nil
}
