package bf16

import (
	"math"
	"testing"
)

func TestFromFloat32(t *testing.T) {
	for _, c := range []struct {
		x    float32
		want uint16
	}{
		{0, 0}, {1, 0x3f80}, {-2, 0xc000},
		{math.Float32frombits(0x3f808000), 0x3f80}, // tie, even below: stays
		{math.Float32frombits(0x3f818000), 0x3f82}, // tie, odd below: rounds up
		{math.Float32frombits(0x3f808001), 0x3f81}, // above the tie
		{float32(math.Inf(1)), 0x7f80},
		{math.MaxFloat32, 0x7f80}, // rounds to +Inf
	} {
		if got := FromFloat32(c.x); got != c.want {
			t.Errorf("FromFloat32(%v) = %#04x, want %#04x", c.x, got, c.want)
		}
	}
	if nan := ToFloat32(FromFloat32(float32(math.NaN()))); nan == nan {
		t.Error("NaN did not stay NaN")
	}
	if got := Round(1.00390625); got != 1 { // 1 + 2^-8: a tie to even
		t.Errorf("Round(1+2^-8) = %v", got)
	}
}
