// Package cuda runs the attention kernels of lighttransfer-go on an NVIDIA GPU (sm_90: H100,
// H200) through the CUDA driver API (gorgonia.org/cu).
//
// The real implementation is compiled only with the build tag `cuda` (go build -tags cuda).
// Without the tag the package holds a stub: [Available] returns [ErrNotBuilt]. A binary built
// with -tags cuda needs the NVIDIA driver at run time and exits at start-up on a machine without
// a GPU (gorgonia.org/cu initialises the driver in its init function).
//
// The package speaks the CPU packages' types: a call's head layout is an attention.Params
// (Threads and Pool are ignored on the GPU), a layer's mask and cache policy is a
// kvcache.Policy, a cache's geometry a kvcache.Shape, and the lazy-ratio windows a
// layerselect.Window, so the model package's compute backend can hand the same values to the
// CPU or to the GPU.
//
// Data types and layouts (the same as package attention, but in device memory):
//
//	q, out  float32 [n][Heads*HeadDim]    token-major; head h of token t at (t*Heads+h)*HeadDim
//	k, v    bf16    [n][KVHeads*HeadDim]  keys after RoPE; query head h uses KV head h/(Heads/KVHeads)
//	lse     float32 [n][Heads]            natural-log log-sum-exp of Scale*q·k over visible keys
//	pos     int32   [slots]               absolute position of each cache slot; negative = empty
//
// K and V are stored as bf16; Q is float32 in memory. The prefill kernel rounds Q and the
// softmax weights to bf16 for its tensor-core products; decode and the lazy ratio use the
// float32 Q as is. Every accumulation is float32 and every output is float32.
// HeadDim must be 64 or 128; Heads must be a multiple of KVHeads.
//
// The kernels live in kernels/attention.cu; kernels/gen.sh compiles them with nvcc into
// kernels/attention.fatbin (sm_90 code plus compute_90 PTX for newer GPUs), which is embedded.
package cuda

import "errors"

// ErrNotBuilt is returned by [Available] when the package was compiled without the cuda tag.
var ErrNotBuilt = errors.New("cuda: built without the cuda build tag")

// ErrUnsupported reports a shape the kernels do not handle (head dim not 64 or 128, Heads not a
// multiple of KVHeads, a device older than sm_90).
var ErrUnsupported = errors.New("cuda: unsupported")

// ErrPolicy reports an invalid cache policy or conversion.
var ErrPolicy = errors.New("cuda: invalid cache policy")
