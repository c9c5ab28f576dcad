package attention

import (
	"testing"
)

// FuzzAttend compares Attend with the naive twin on shapes, masks, segment
// splits and position layouts derived from the fuzz input. Tolerances are the
// table tests' (queries in [-1, 1]).
func FuzzAttend(f *testing.F) {
	f.Add(uint64(1), uint8(1), uint8(1), uint8(8), uint16(10), uint16(0), uint8(0), uint8(0), uint8(1), uint8(0))
	f.Add(uint64(2), uint8(2), uint8(7), uint8(64), uint16(33), uint16(100), uint8(4), uint8(32), uint8(3), uint8(1))
	f.Add(uint64(3), uint8(1), uint8(4), uint8(13), uint16(70), uint16(5), uint8(2), uint8(6), uint8(2), uint8(2))
	f.Add(uint64(4), uint8(3), uint8(2), uint8(1), uint16(1), uint16(200), uint8(0), uint8(1), uint8(5), uint8(3))
	f.Add(uint64(5), uint8(2), uint8(3), uint8(40), uint16(129), uint16(0), uint8(1), uint8(2), uint8(1), uint8(0))
	f.Add(uint64(6), uint8(1), uint8(6), uint8(63), uint16(50), uint16(60), uint8(4), uint8(9), uint8(2), uint8(0x83))
	f.Fuzz(func(t *testing.T, seed uint64, kvh, ratio, d uint8, n, cache uint16, sink, window, nseg, flags uint8) {
		c := attCase{
			kvh:      1 + int(kvh)%3,
			ratio:    1 + int(ratio)%8,
			d:        1 + int(d)%72,
			n:        1 + int(n)%96,
			cache:    int(cache) % 160,
			mask:     mask{int(sink) % 8, int(window) % 40},
			nseg:     1 + int(nseg)%5,
			shuffleQ: flags&1 != 0,
			drop:     int(flags>>1) % 4,
			threads:  1 + int(flags>>3)%4,
		}
		dt := makeData(c, seed)
		want, wantLse := naiveAttend(dt.q, dt.qpos, dt.kv, c.mask, dt.p)
		out := make([]float32, len(dt.q))
		lse := make([]float32, c.n*dt.p.Heads)
		if flags&0x80 != 0 { // the portable Go kernels
			withPortable(t, func() { Attend(out, dt.q, dt.qpos, dt.kv, c.mask.sink, c.mask.window, dt.p, lse) })
			requireClose(t, out, want, outTol, "portable out")
			requireClose(t, lse, wantLse, lseTol, "portable lse")
			return
		}
		Attend(out, dt.q, dt.qpos, dt.kv, c.mask.sink, c.mask.window, dt.p, lse)
		requireClose(t, out, want, outTol, "out")
		requireClose(t, lse, wantLse, lseTol, "lse")
		// Rerun on a different thread count: bit-identical.
		p1 := dt.p
		p1.Threads = 1
		out1 := make([]float32, len(out))
		Attend(out1, dt.q, dt.qpos, dt.kv, c.mask.sink, c.mask.window, p1, nil)
		requireBits(t, out1, out, "threads")
	})
}
