//go:build purego

package attention

import "testing"

// TestPuregoRoute: with the purego tag the attention kernels run their pure-Go code.
func TestPuregoRoute(t *testing.T) {
	if useAVX2 {
		t.Fatal("purego build selects the AVX2 kernels")
	}
}
