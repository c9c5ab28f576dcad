//go:build purego

package cpu

import "testing"

// TestPuregoHasNoRoutes: the purego tag turns every assembly route off.
func TestPuregoHasNoRoutes(t *testing.T) {
	if AVX2FMA || AVX512 || F16C || VNNI {
		t.Fatalf("purego build reports AVX2FMA=%v AVX512=%v", AVX2FMA, AVX512)
	}
}
