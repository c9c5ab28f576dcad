//go:build amd64 && !purego

package cpu

var avx2fma, avx512, f16c, vnni = detect()

// detect reads CPUID and XCR0: AVX2 and FMA need the OS to save YMM state, AVX-512 also
// opmask and ZMM state.
func detect() (avx2fma, avx512, f16c, vnni bool) {
	max0, _, _, _ := cpuid(0, 0)
	if max0 < 7 {
		return false, false, false, false
	}
	_, _, c1, _ := cpuid(1, 0)
	const fma, osxsave, avx, cvt16 = 1 << 12, 1 << 27, 1 << 28, 1 << 29
	if c1&fma == 0 || c1&osxsave == 0 || c1&avx == 0 {
		return false, false, false, false
	}
	xcr0, _ := xgetbv()
	if xcr0&6 != 6 { // XMM and YMM state
		return false, false, false, false
	}
	_, b7, c7, _ := cpuid(7, 0)
	avx2fma = b7&(1<<5) != 0
	const f, dq, bw, vl, vnniBit = 1 << 16, 1 << 17, 1 << 30, 1 << 31, 1 << 11
	avx512 = avx2fma && xcr0&0xe6 == 0xe6 && b7&f != 0 && b7&dq != 0 && b7&vl != 0
	f16c = avx2fma && c1&cvt16 != 0
	vnni = avx512 && f16c && b7&bw != 0 && c7&vnniBit != 0
	return avx2fma, avx512, f16c, vnni
}

//go:noescape
func cpuid(eax, ecx uint32) (a, b, c, d uint32)

//go:noescape
func xgetbv() (eax, edx uint32)
