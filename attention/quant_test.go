package attention

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// qSeg is one segment of a test QKV: encoded (elem BF16 or Q8) or float32 (fk, fv).
type qSeg struct {
	elem   int
	k, v   []byte
	ks, vs []float32
	fk, fv []float32
	pos    []int32
}

// qSegments is the tests' QKV: the oracle's own encoding of a cache.
type qSegments []qSeg

func (s qSegments) NumSegments() int { return len(s) }
func (s qSegments) Segment(i int) (k, v []float32, pos []int32) {
	return s[i].fk, s[i].fv, s[i].pos
}
func (s qSegments) SegmentQ(i int) (elem int, k, v []byte, ks, vs []float32, pos []int32) {
	g := s[i]
	return g.elem, g.k, g.v, g.ks, g.vs, g.pos
}

var _ QKV = qSegments(nil)

// naiveEncode encodes x ([tokens][heads·d]) as elem and returns the bytes, the scales and the
// values the encoding stands for (what the oracle attends over). BF16: round to nearest even;
// Q8: per group of min(32, d) elements of a head, scale max|x|/127, q = round(x/scale).
func naiveEncode(elem int, x []float32, d int) (b []byte, sc, deq []float32) {
	deq = make([]float32, len(x))
	switch elem {
	case ElemBF16:
		b = make([]byte, 2*len(x))
		for i, f := range x {
			u := math.Float32bits(f)
			hi, lo := u>>16, u&0xffff
			if lo > 0x8000 || lo == 0x8000 && hi&1 == 1 {
				hi++
			}
			binary.LittleEndian.PutUint16(b[2*i:], uint16(hi))
			deq[i] = math.Float32frombits(hi << 16)
		}
	case ElemQ4:
		panic("naiveEncode: Q4 keys and values are encoded by naiveEncodeQ4")
	case ElemQ8:
		b = make([]byte, len(x))
		gs := min(32, d)
		for h := 0; h < len(x); h += d {
			for g := h; g < h+d; g += gs {
				e := min(g+gs, h+d)
				var amax float64
				for _, f := range x[g:e] {
					amax = math.Max(amax, math.Abs(float64(f)))
				}
				s := float32(amax) / 127
				sc = append(sc, s)
				for i := g; i < e; i++ {
					var q int8
					if s != 0 {
						q = int8(math.Round(float64(x[i] * (1 / s))))
					}
					b[i] = byte(q)
					deq[i] = float32(q) * s
				}
			}
		}
	}
	return b, sc, deq
}

// quantize encodes every segment but the last (the queries' own keys, which stay float32
// as the model's span keys do) and returns the QKV and the values it stands for as Segments.
func quantize(kv Segments, elem, d int) (qSegments, Segments) {
	q := make(qSegments, len(kv))
	oracle := make(Segments, len(kv))
	for i, s := range kv {
		if i == len(kv)-1 {
			q[i] = qSeg{elem: ElemF32, fk: s.K, fv: s.V, pos: s.Pos}
			oracle[i] = s
			continue
		}
		if elem == ElemQ4 {
			g := naiveEncodeQ4(s.K, s.V, len(s.Pos), d)
			q[i] = qSeg{elem: elem, k: g.k, v: g.v, ks: g.ks, vs: g.vs, pos: s.Pos}
			oracle[i] = Segment{K: g.kd, V: g.vd, Pos: s.Pos}
			continue
		}
		kb, ks, kd := naiveEncode(elem, s.K, d)
		vb, vs, vd := naiveEncode(elem, s.V, d)
		q[i] = qSeg{elem: elem, k: kb, v: vb, ks: ks, vs: vs, pos: s.Pos}
		oracle[i] = Segment{K: kd, V: vd, Pos: s.Pos}
	}
	return q, oracle
}

func checkQuant(t *testing.T, c attCase, elem int, seed uint64, portable bool) {
	t.Helper()
	dt := makeData(c, seed)
	qkv, oracle := quantize(dt.kv, elem, c.d)
	want, wantLse := naiveAttend(dt.q, dt.qpos, oracle, c.mask, dt.p)
	out := make([]float32, len(dt.q))
	lse := make([]float32, c.n*dt.p.Heads)
	run := func() { Attend(out, dt.q, dt.qpos, qkv, c.mask.sink, c.mask.window, dt.p, lse) }
	if portable {
		withPortable(t, run)
	} else {
		run()
	}
	// A single query takes the integer Q8 or Q4 route.
	intRoute := q8IntRoute(elem, c.ratio, c.d) || q4IntRoute(elem, c.ratio, c.d)
	if c.n == 1 && intRoute {
		var bound []float64
		want, wantLse, bound, _ = naiveIntDecode(elem, dt.q, dt.qpos[0], qkv, oracle, c.mask, dt.p)
		requireCloseBound(t, out, want, outTol, bound, "out")
	} else {
		requireClose(t, out, want, outTol, "out")
	}
	if c.n == 1 && intRoute {
		requireClose(t, lse, wantLse, lseTol+expQ8Tol, "lse")
	} else {
		requireClose(t, lse, wantLse, lseTol, "lse")
	}
	// Other thread counts give the same bits; decode of one query equals the oracle.
	p1 := dt.p
	p1.Threads = 1 + dt.p.Threads%3
	out1 := make([]float32, len(out))
	run1 := func() {
		Attend(out1, dt.q, dt.qpos, qkv, c.mask.sink, c.mask.window, p1, nil)
	}
	if portable {
		withPortable(t, run1)
	} else {
		run1()
	}
	requireBits(t, out1, out, "threads")
	hd := dt.p.Heads * dt.p.HeadDim
	i := c.n - 1
	outD := make([]float32, hd)
	Decode(outD, dt.q[i*hd:][:hd], dt.qpos[i], qkv, c.mask.sink, c.mask.window, dt.p)
	if intRoute {
		wantD, _, bound, _ := naiveIntDecode(elem, dt.q[i*hd:][:hd], dt.qpos[i], qkv, oracle, c.mask, dt.p)
		requireCloseBound(t, outD, wantD, outTol, bound, "decode")
		return
	}
	requireClose(t, outD, want[i*hd:][:hd], outTol, "decode")
}

// TestQuantizedAttend: attention over BF16, Q8 and Q4 segments (mixed with a float32 one) equals
// the naive oracle over the values those encodings stand for, on every route, for head widths
// that do and do not fit the SIMD kernels (Q8 groups of 32 with a shorter last group at 40, 80).
func TestQuantizedAttend(t *testing.T) {
	cases := []attCase{
		{kvh: 2, ratio: 7, d: 64, cache: 300, n: 1, nseg: 3, threads: 2},
		{kvh: 2, ratio: 7, d: 64, cache: 100, n: 32, nseg: 3, mask: mask{4, 32}},
		{kvh: 1, ratio: 2, d: 128, cache: 70, n: 9, nseg: 1, threads: 3},
		{kvh: 3, ratio: 1, d: 13, cache: 40, n: 41, nseg: 2, mask: mask{2, 6}},
		{kvh: 1, ratio: 4, d: 40, cache: 90, n: 20, nseg: 2, drop: 2, mask: mask{0, 9}},
		{kvh: 2, ratio: 3, d: 80, cache: 130, n: 3, nseg: 4, qamp: 4},
		{kvh: 1, ratio: 1, d: 8, cache: 65, n: 2, nseg: 1},
		{kvh: 1, ratio: 2, d: 16, cache: 33, n: 5, nseg: 2, mask: mask{1, 3}},
	}
	for i, c := range cases {
		for _, elem := range []int{ElemBF16, ElemQ8, ElemQ4} {
			for _, portable := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/elem%d/portable%v", c, elem, portable), func(t *testing.T) {
					checkQuant(t, c, elem, uint64(3000+i), portable)
				})
			}
		}
	}
}

// FuzzAttendQuant is FuzzAttend over BF16, Q8 and Q4 segments.
func FuzzAttendQuant(f *testing.F) {
	f.Add(uint64(1), uint8(2), uint8(7), uint8(64), uint16(1), uint16(300), uint8(4), uint8(32), uint8(3), uint8(1))
	f.Add(uint64(2), uint8(1), uint8(3), uint8(40), uint16(17), uint16(90), uint8(0), uint8(0), uint8(2), uint8(2))
	f.Add(uint64(3), uint8(3), uint8(1), uint8(5), uint16(5), uint16(20), uint8(2), uint8(4), uint8(1), uint8(0x81))
	f.Add(uint64(4), uint8(1), uint8(2), uint8(16), uint16(9), uint16(70), uint8(1), uint8(8), uint8(4), uint8(0x82))
	f.Fuzz(func(t *testing.T, seed uint64, kvh, ratio, d uint8, n, cache uint16, sink, window, nseg, flags uint8) {
		c := attCase{
			kvh:     1 + int(kvh)%3,
			ratio:   1 + int(ratio)%8,
			d:       1 + int(d)%96,
			n:       1 + int(n)%40,
			cache:   int(cache) % 200,
			mask:    mask{int(sink) % 8, int(window) % 40},
			nseg:    1 + int(nseg)%5,
			drop:    int(flags>>2) % 4,
			threads: 1 + int(flags>>4)%3,
		}
		elem := ElemBF16 + int(flags&3)%3
		checkQuant(t, c, elem, seed, flags&0x80 != 0)
	})
}

// TestDequantRoutes: every dequantization route gives the portable kernel's bits (a float32
// conversion and one product are exact-rounded the same way everywhere).
func TestDequantRoutes(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 8))
	type route struct {
		name         string
		avx2, avx512 bool
	}
	routes := []route{{"portable", false, false}}
	if useAVX2 {
		routes = append(routes, route{"avx2", true, false})
	}
	if useAVX512 {
		routes = append(routes, route{"avx512", true, true})
	} else {
		t.Log("no AVX-512 on this machine: its route is not run")
	}
	saved, saved512 := useAVX2, useAVX512
	defer func() { useAVX2, useAVX512 = saved, saved512 }()
	for _, d := range []int{8, 16, 24, 32, 40, 64, 80, 128} {
		const n, kvh = 37, 2
		stride := kvh * d
		x := randSlice(r, n*stride, 5)
		bb, _, _ := naiveEncode(ElemBF16, x, d)
		qb, sc, _ := naiveEncode(ElemQ8, x, d)
		gs, gph := q8Groups(d)
		var ref [2][]float32
		for _, rt := range routes {
			useAVX2, useAVX512 = rt.avx2, rt.avx512
			got := [2][]float32{make([]float32, n*d), make([]float32, n*d)}
			deqBF16(got[0], bb[2*d:], d, stride, n) // KV head 1
			deqQ8(got[1], qb[d:], sc[gph:], d, gs, stride, kvh*gph, n)
			if ref[0] == nil {
				ref = got
				continue
			}
			for k := range got {
				requireBits(t, got[k], ref[k], fmt.Sprintf("d=%d %s kind %d", d, rt.name, k))
			}
		}
		// The portable kernel decodes what naiveEncode stands for.
		_, _, bd := naiveEncode(ElemBF16, x, d)
		_, _, qd := naiveEncode(ElemQ8, x, d)
		for t2 := range n {
			for i := range d {
				require.Equal(t, bd[t2*stride+d+i], ref[0][t2*d+i])
				require.Equal(t, qd[t2*stride+d+i], ref[1][t2*d+i])
			}
		}
	}
}

// q4Enc is a segment encoded as ElemQ4 and the values it stands for.
type q4Enc struct {
	k, v   []byte
	ks, vs []float32
	kd, vd []float32
}

// naiveGrid puts the elements x[0], x[stride], ... on 16 levels from their min to their max.
func naiveGrid(x []float32, stride int) (codes []byte, step, lo float32) {
	lo, hi := float32(math.Inf(1)), float32(math.Inf(-1))
	for i := 0; i < len(x); i += stride {
		lo, hi = min(lo, x[i]), max(hi, x[i])
	}
	step = (hi - lo) / 15
	for i := 0; i < len(x); i += stride {
		var c float64
		if step != 0 {
			c = math.Max(0, math.Min(15, math.Round(float64((x[i]-lo)/step))))
		}
		codes = append(codes, byte(c))
	}
	return codes, step, lo
}

// naiveEncodeQ4 encodes n tokens of keys and values ([n][w]) as ElemQ4: keys per channel over
// the n tokens, values per token per group of min(32, d) elements of a head.
func naiveEncodeQ4(k, v []float32, n, d int) q4Enc {
	w := len(k) / max(n, 1)
	rb := (w + 1) / 2
	e := q4Enc{k: make([]byte, n*rb), v: make([]byte, n*rb), ks: make([]float32, 2*w), kd: make([]float32, n*w), vd: make([]float32, n*w)}
	put := func(b []byte, t, c int, code byte) { b[t*rb+c/2] |= code << (4 * (c & 1)) }
	for c := range w {
		codes, step, lo := naiveGrid(k[c:], w)
		e.ks[c], e.ks[w+c] = step, lo
		for t, cd := range codes {
			put(e.k, t, c, cd)
			e.kd[t*w+c] = float32(cd)*step + lo
		}
	}
	gs := min(32, d)
	ng := w / d * ((d + gs - 1) / gs)
	for t := range n {
		sc := make([]float32, 2*ng)
		gi := 0
		for h := 0; h < w; h += d {
			for a := h; a < h+d; a += gs {
				end := min(a+gs, h+d)
				codes, step, lo := naiveGrid(v[t*w+a:t*w+end], 1)
				sc[gi], sc[ng+gi] = step, lo
				for i, cd := range codes {
					put(e.v, t, a+i, cd)
					e.vd[t*w+a+i] = float32(cd)*step + lo
				}
				gi++
			}
		}
		e.vs = append(e.vs, sc...)
	}
	return e
}

// TestDequantQ4Routes: the AVX2 Q4 route decodes what the portable one does, up to the one
// rounding a fused multiply-add saves (code·step + min rounded once instead of twice), for
// every KV head of rows with one and two heads and head widths with one or several groups.
func TestDequantQ4Routes(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2+FMA on this machine")
	}
	r := rand.New(rand.NewPCG(4, 4))
	saved, saved512 := useAVX2, useAVX512
	defer func() { useAVX2, useAVX512 = saved, saved512 }()
	for _, d := range []int{8, 16, 24, 40, 64, 128} {
		for _, kvh := range []int{1, 2} {
			const n = 29
			w := kvh * d
			k, v := randSlice(r, n*w, 4), randSlice(r, n*w, 4)
			e := naiveEncodeQ4(k, v, n, d)
			s := seg{elem: ElemQ4, n: n, kb: e.k, vb: e.v, ks: e.ks, vs: e.vs}
			for h := range kvh {
				for _, k0 := range []int{0, 3} {
					cnt := n - k0
					var got [2][2][]float32
					for i, avx := range []bool{false, true} {
						useAVX2, useAVX512 = avx, false
						kt, vt := make([]float32, cnt*d), make([]float32, cnt*d)
						deqQ4(kt, vt, &s, k0, cnt, h*d, d, w, kvh)
						got[i] = [2][]float32{kt, vt}
					}
					for c := range 2 {
						requireClose(t, got[1][c], got[0][c], 1e-6, fmt.Sprintf("d=%d kvh=%d head %d k0 %d kind %d", d, kvh, h, k0, c))
					}
					// The portable route decodes exactly what the oracle encoded.
					for tt := range cnt {
						for i := range d {
							require.Equal(t, e.kd[(k0+tt)*w+h*d+i], got[0][0][tt*d+i])
							require.Equal(t, e.vd[(k0+tt)*w+h*d+i], got[0][1][tt*d+i])
						}
					}
				}
			}
		}
	}
}
