// Package loader reads Hugging Face checkpoints for lighttransfer-go:
// safetensors weights (a single model.safetensors or a sharded
// model.safetensors.index.json), config.json and generation_config.json.
//
// Open maps the weight files read-only into memory; Checkpoint.Float32
// returns F32 tensors without copying (valid until Close) and widens F16 and
// BF16 to float32, while Checkpoint.Raw gives the bytes as stored, for
// kernels that read bf16 directly. Every safetensors header is validated
// before use (ReadHeader): bounded length, valid JSON, known dtypes, offsets
// inside the data area, no overlaps, byte sizes matching shape × dtype, with
// overflow-safe arithmetic, and allocation bounded by the input size.
//
// ParseConfig understands llama, mistral, qwen2 (and the QwQ-32B-LightTransfer
// "qwen2littrans" variant) and qwen3 configs, fills Hugging Face's defaults,
// reads rope_scaling (linear, llama3, yarn; Config.RopeInvFreq reproduces
// Hugging Face's float32 inverse frequencies) and the LightTransfer keys
// lazy_layers, streaming_sink, streaming_window and layer_types.
//
// Errors are *FormatError values naming the file, tensor or key at fault;
// test their class with errors.Is against ErrNotFound, ErrFormat, ErrDType,
// ErrUnsupported and ErrShape. Nothing in this package panics on bad input.
package loader
