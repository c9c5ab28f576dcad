package f16

import (
	"math"
	"testing"
)

// TestRoundTrip: every half value widens exactly and rounds back to the same bits (NaNs stay
// NaNs), and values halfway between two halves round to the even one.
func TestRoundTrip(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		x := ToFloat32(uint16(h))
		got := FromFloat32(x)
		if math.IsNaN(float64(x)) {
			if !math.IsNaN(float64(ToFloat32(got))) {
				t.Fatalf("NaN %#04x rounds to %#04x, not a NaN", h, got)
			}
			continue
		}
		if got != uint16(h) {
			t.Fatalf("%#04x widens to %v and rounds back to %#04x", h, x, got)
		}
	}
	// 1 + 2^-11 lies halfway between 1 (0x3c00, even) and 1 + 2^-10 (0x3c01).
	if got := FromFloat32(1 + 1.0/2048); got != 0x3c00 {
		t.Fatalf("halfway case rounds to %#04x, want 0x3c00", got)
	}
	if got := FromFloat32(65520); got != 0x7c00 {
		t.Fatalf("65520 rounds to %#04x, want +Inf 0x7c00", got)
	}
}
