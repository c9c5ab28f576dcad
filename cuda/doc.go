// Package cuda runs the attention kernels of lighttransfer-go on an NVIDIA GPU (sm_90: H100,
// H200) through the CUDA driver API (gorgonia.org/cu).
//
// The real implementation is compiled only with the build tag `cuda` (go build -tags cuda).
// Without the tag the package holds a stub: [Available] returns [ErrNotBuilt]. A binary built
// with -tags cuda needs the NVIDIA driver at run time and exits at start-up on a machine without
// a GPU (gorgonia.org/cu initialises the driver in its init function).
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

// Params describes the head layout, as attention.Params does. Scale 0 means 1/sqrt(HeadDim).
type Params struct {
	Heads, KVHeads, HeadDim int
	Scale                   float32
}

// Mask is the streaming mask, as attention.Mask: Window 0 is plain causal attention; otherwise
// key position kp is visible to query position qp iff kp <= qp && (kp < Sink || kp > qp-Window).
type Mask struct{ Sink, Window int }

// Visible reports whether key position kp is visible to query position qp (negative kp never is).
func (m Mask) Visible(qp, kp int32) bool {
	if kp < 0 || kp > qp {
		return false
	}
	return m.Window == 0 || kp < int32(m.Sink) || kp > qp-int32(m.Window)
}

// Window holds the lazy-ratio windows w_sink, w_recent, w_last of docs/method.md §2 (no implicit defaults).
type Window struct{ Sink, Recent, Last int }

// Policy is a cache layer's policy, as kvcache.Policy: the zero value is Full, Window > 0 is
// streaming (a sink segment of Sink slots plus a ring of Window slots).
type Policy struct{ Sink, Window int }

// Full returns the policy of a layer that keeps every token.
func Full() Policy { return Policy{} }

// Streaming returns the policy of a lazy layer: sink tokens plus a ring of the last window.
func Streaming(sink, window int) Policy { return Policy{Sink: sink, Window: window} }

// IsStreaming reports whether p is a streaming policy.
func (p Policy) IsStreaming() bool { return p.Window > 0 }

// Shape is the per-token width of a cache: KVHeads*HeadDim values for K and as many for V.
type Shape struct{ KVHeads, HeadDim int }

// Width returns KVHeads*HeadDim.
func (s Shape) Width() int { return s.KVHeads * s.HeadDim }
