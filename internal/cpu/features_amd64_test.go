//go:build amd64 && !purego

package cpu

import (
	"testing"

	xcpu "golang.org/x/sys/cpu"
)

// TestDetectMatchesXSys cross-checks the detection with golang.org/x/sys/cpu (a test-only
// dependency; the package itself uses only the standard library).
func TestDetectMatchesXSys(t *testing.T) {
	x := xcpu.X86
	if want := x.HasAVX2 && x.HasFMA; AVX2FMA != want {
		t.Errorf("AVX2FMA = %v, x/sys/cpu says %v", AVX2FMA, want)
	}
	if want := x.HasAVX2 && x.HasFMA && x.HasAVX512F && x.HasAVX512DQ && x.HasAVX512VL; AVX512 != want {
		t.Errorf("AVX512 = %v, x/sys/cpu says %v", AVX512, want)
	}
	if want := AVX2FMA && x.HasF16C; F16C != want {
		t.Errorf("F16C = %v, x/sys/cpu says %v", F16C, want)
	}
	if want := AVX512 && F16C && x.HasAVX512BW && x.HasAVX512VNNI; VNNI != want {
		t.Errorf("VNNI = %v, x/sys/cpu says %v", VNNI, want)
	}
}
