package kvcache

import "fmt"

// Policy says how a layer keeps its tokens and, equally, which keys its queries see: it is the
// one type of the project that carries a sink and a window. The zero value is Full (keep
// everything; causal attention). Window > 0 means streaming: the first Sink tokens ever appended
// plus the most recent Window tokens (a ring), and a query at position q sees keys k < Sink and
// q − Window < k ≤ q (see [Policy.Visible]). Sink 0 is a plain sliding window. A Policy with
// Window == 0 and Sink != 0 is invalid (see [Policy.Validate]).
type Policy struct {
	Sink, Window int
}

// Full returns the policy that keeps every token (the zero Policy).
func Full() Policy { return Policy{} }

// Streaming returns the policy that keeps the first sink tokens plus the last
// window tokens. It does not validate; see [Policy.Validate].
func Streaming(sink, window int) Policy { return Policy{Sink: sink, Window: window} }

// IsStreaming reports whether p is a streaming policy (Window > 0).
func (p Policy) IsStreaming() bool { return p.Window > 0 }

// Visible reports whether the key at absolute position kp is visible to the query at position
// qp: kp <= qp and, when streaming, kp < Sink or kp > qp−Window. Negative positions (empty
// slots of a device cache) are never visible.
func (p Policy) Visible(qp, kp int32) bool {
	if kp < 0 || kp > qp {
		return false
	}
	if p.Window <= 0 {
		return true
	}
	return int64(kp) < int64(p.Sink) || int64(kp) > int64(qp)-int64(p.Window)
}

// MaxTokens returns the most tokens a layer with this policy holds: Sink+Window
// for streaming, 0 (unbounded) for Full.
func (p Policy) MaxTokens() int {
	if p.IsStreaming() {
		return p.Sink + p.Window
	}
	return 0
}

// String returns "full" or "streaming(sink=S,window=W)".
func (p Policy) String() string {
	if p == (Policy{}) {
		return "full"
	}
	if p.IsStreaming() {
		return fmt.Sprintf("streaming(sink=%d,window=%d)", p.Sink, p.Window)
	}
	return fmt.Sprintf("invalid(sink=%d,window=%d)", p.Sink, p.Window)
}

// Validate reports an error wrapping [ErrPolicy] unless p is Full (the zero
// value) or streaming with Sink >= 0 and Window > 0. A negative Window, or a
// non-zero Sink with Window == 0, is invalid.
func (p Policy) Validate() error {
	switch {
	case p == (Policy{}):
		return nil
	case p.Window < 0:
		return errorf(ErrPolicy, "policy sink %d window %d: window must be >= 0", p.Sink, p.Window)
	case p.Window == 0:
		return errorf(ErrPolicy, "policy sink %d window 0: a sink needs a window > 0 (Full has sink 0, window 0)", p.Sink)
	case p.Sink < 0:
		return errorf(ErrPolicy, "policy sink %d window %d: sink must be >= 0", p.Sink, p.Window)
	}
	return nil
}
