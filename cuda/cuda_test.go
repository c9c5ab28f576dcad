//go:build cuda

package cuda

import (
	"fmt"
	"math"
	"math/rand"
	"os"
	"testing"

	"github.com/lighttransfer/lighttransfer-go/attention"
	"github.com/lighttransfer/lighttransfer-go/kvcache"
	"github.com/lighttransfer/lighttransfer-go/layerselect"
)

var dev *Device

func TestMain(m *testing.M) {
	var err error
	dev, err = Open(0)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cuda: open device:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "cuda: device %q, %d SMs\n", dev.Name(), dev.SMs())
	code := m.Run()
	if err := dev.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

func upload(t testing.TB, dt DType, x []float32) *Buffer {
	t.Helper()
	b, err := dev.Alloc(dt, len(x))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.CopyFromF32(x); err != nil {
		t.Fatal(err)
	}
	return b
}

func uploadI32(t testing.TB, x []int32) *Buffer {
	t.Helper()
	b, err := dev.Alloc(I32, len(x))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.CopyFromI32(x); err != nil {
		t.Fatal(err)
	}
	return b
}

func alloc(t testing.TB, dt DType, n int) *Buffer {
	t.Helper()
	b, err := dev.Alloc(dt, n)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func download(t testing.TB, b *Buffer, n int) []float32 {
	t.Helper()
	x := make([]float32, n)
	if err := b.CopyToF32(x); err != nil {
		t.Fatal(err)
	}
	return x
}

// compare fails if |got-want| > atol + rtol*|want| anywhere and logs the largest error.
func compare(t *testing.T, what string, got []float32, want []float64, atol, rtol float64) {
	t.Helper()
	worst, at := 0.0, -1
	for i := range want {
		g, w := float64(got[i]), want[i]
		if math.IsInf(w, -1) && math.IsInf(g, -1) {
			continue
		}
		e := math.Abs(g - w)
		if math.IsNaN(g) || e > atol+rtol*math.Abs(w) {
			t.Errorf("%s[%d] = %v, want %v (err %g)", what, i, g, w, e)
			return
		}
		if e > worst {
			worst, at = e, i
		}
	}
	t.Logf("%s: max abs err %.3g at %d", what, worst, at)
}

var layouts = []attention.Params{
	{Heads: 4, KVHeads: 4, HeadDim: 64},  // GQA ratio 1
	{Heads: 8, KVHeads: 2, HeadDim: 128}, // ratio 4
	{Heads: 14, KVHeads: 2, HeadDim: 64}, // ratio 7 (Qwen2.5-0.5B)
	{Heads: 7, KVHeads: 1, HeadDim: 128}, // ratio 7
	{Heads: 16, KVHeads: 1, HeadDim: 64}, // ratio 16: two head groups in decode
	{Heads: 2, KVHeads: 1, HeadDim: 128, Scale: 0.3},
}

// Tolerances. Prefill rounds q (the oracle does the same) and the softmax weights to bf16 for
// the tensor-core P·V product: a relative error up to 2^-9 per weight, so out (values of order
// 1) gets 1.5e-2 absolute; its lse comes from float32 weights: 2e-3. Decode and the lazy ratio
// only accumulate in float32 in another order: 2e-4 absolute plus 1e-4 relative.
const (
	prefillOutTol = 1.5e-2
	prefillLSETol = 2e-3
	decodeTol     = 2e-4
)

func TestPrefill(t *testing.T) {
	for _, form := range []int{2, 3, 1} {
		dev.prefillForm = form
		t.Run(fmt.Sprintf("prefill%d", form), testPrefill)
	}
	dev.prefillForm = 0
}

func testPrefill(t *testing.T) {
	masks := []kvcache.Policy{{}, {Sink: 4, Window: 16}, {Sink: 0, Window: 7}, {Sink: 70, Window: 100}}
	sizes := []int{1, 5, 63, 64, 65, 200, 517}
	r := rand.New(rand.NewSource(7))
	for li, p := range layouts {
		for ni, n := range sizes {
			m := masks[(li+ni)%len(masks)]
			t.Run(fmt.Sprintf("h%d_kv%d_d%d/n%d/sink%d_win%d", p.Heads, p.KVHeads, p.HeadDim, n, m.Sink, m.Window), func(t *testing.T) {
				qw, kw := p.Heads*p.HeadDim, p.KVHeads*p.HeadDim
				q := roundAll(randVec(r, n*qw, 1.5))
				k := roundAll(randVec(r, n*kw, 1))
				v := roundAll(randVec(r, n*kw, 1))
				pos := make([]int32, n)
				for i := range pos {
					pos[i] = int32(i)
				}
				want, wantLSE := make([]float64, n*qw), make([]float64, n*p.Heads)
				refAttend(want, wantLSE, q, pos, k, v, pos, m, p)
				qb, kb, vb := upload(t, F32, q), upload(t, BF16, k), upload(t, BF16, v)
				ob, lb := alloc(t, F32, n*qw), alloc(t, F32, n*p.Heads)
				defer func() { qb.Free(); kb.Free(); vb.Free(); ob.Free(); lb.Free() }()
				if err := dev.Prefill(ob, qb, kb, vb, n, m, p, lb); err != nil {
					t.Fatal(err)
				}
				compare(t, "out", download(t, ob, n*qw), want, prefillOutTol, 0)
				compare(t, "lse", download(t, lb, n*p.Heads), wantLSE, prefillLSETol, 1e-4)
			})
		}
	}
}

// TestDecodeSlots decodes over slots holding positions in a shuffled order with empty slots.
func TestDecodeSlots(t *testing.T) { bothDecoders(t, testDecodeSlots) }

func testDecodeSlots(t *testing.T) {
	r := rand.New(rand.NewSource(11))
	for li, p := range layouts {
		for _, n := range []int{1, 3, 100, 1000, 5000} {
			m := []kvcache.Policy{{}, {Sink: 4, Window: 64}, {Sink: 0, Window: 10}}[(li+n)%3]
			t.Run(fmt.Sprintf("h%d_kv%d_d%d/n%d/sink%d_win%d", p.Heads, p.KVHeads, p.HeadDim, n, m.Sink, m.Window), func(t *testing.T) {
				qw, kw := p.Heads*p.HeadDim, p.KVHeads*p.HeadDim
				slots := n + n/7
				k := roundAll(randVec(r, slots*kw, 1))
				v := roundAll(randVec(r, slots*kw, 1))
				q := randVec(r, qw, 1.5)
				pos := make([]int32, slots)
				for i := range pos {
					pos[i] = int32(i)
					if i >= n {
						pos[i] = -1
					}
				}
				r.Shuffle(slots, func(i, j int) { pos[i], pos[j] = pos[j], pos[i] })
				qp := int32(n - 1)
				want, wantLSE := make([]float64, qw), make([]float64, p.Heads)
				refAttend(want, wantLSE, q, []int32{qp}, k, v, pos, m, p)
				qb, kb, vb, pb := upload(t, F32, q), upload(t, BF16, k), upload(t, BF16, v), uploadI32(t, pos)
				ob, lb := alloc(t, F32, qw), alloc(t, F32, p.Heads)
				defer func() {
					qb.Free()
					kb.Free()
					vb.Free()
					pb.Free()
					ob.Free()
					lb.Free()
				}()
				if err := dev.Decode(ob, qb, qp, KV{K: kb, V: vb, Pos: pb, Slots: slots}, m, p, lb); err != nil {
					t.Fatal(err)
				}
				compare(t, "out", download(t, ob, qw), want, decodeTol, 1e-4)
				compare(t, "lse", download(t, lb, p.Heads), wantLSE, decodeTol, 1e-4)
			})
		}
	}
}

// TestCacheDecode appends tokens in batches to a full and a streaming cache (the ring wraps
// several times, so slots end in rotated order), converts a full layer (Test mode), and decodes.
func TestCacheDecode(t *testing.T) { bothDecoders(t, testCacheDecode) }

func testCacheDecode(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	for _, p := range []attention.Params{layouts[1], layouts[2], layouts[0]} {
		t.Run(fmt.Sprintf("h%d_kv%d_d%d", p.Heads, p.KVHeads, p.HeadDim), func(t *testing.T) {
			s := kvcache.Shape{KVHeads: p.KVHeads, HeadDim: p.HeadDim}
			w := s.Width()
			sm := kvcache.Streaming(4, 50)
			c, err := dev.NewCache(s, []kvcache.Policy{kvcache.Full(), sm, kvcache.Full()}, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Free()
			var allK, allV []float32
			batches := []int{300, 1, 17, 64, 1, 1, 130, 1}
			total := 0
			for _, b := range batches {
				k := randVec(r, b*w, 1)
				v := randVec(r, b*w, 1)
				kb, vb := upload(t, F32, k), upload(t, F32, v)
				for layer := 0; layer < 2; layer++ {
					if err := c.Append(layer, kb, vb, b, int32(total)); err != nil {
						t.Fatal(err)
					}
				}
				if total == 0 {
					// layer 2 gets the prompt, is converted, then gets the rest.
					if err := c.Append(2, kb, vb, b, 0); err != nil {
						t.Fatal(err)
					}
					if err := c.Convert(2, kvcache.Streaming(4, 40)); err != nil {
						t.Fatal(err)
					}
					if err := c.Convert(2, kvcache.Streaming(4, 40)); err == nil {
						t.Fatal("second Convert succeeded")
					}
				} else if err := c.Append(2, kb, vb, b, int32(total)); err != nil {
					t.Fatal(err)
				}
				kb.Free()
				vb.Free()
				allK = append(allK, roundAll(k)...)
				allV = append(allV, roundAll(v)...)
				total += b
				if got, want := c.Len(1), min(total, 54); got != want {
					t.Fatalf("streaming Len = %d, want %d", got, want)
				}
				// decode the newest token in each layer
				qp := int32(total - 1)
				q := randVec(r, p.Heads*p.HeadDim, 1.5)
				qb := upload(t, F32, q)
				ob := alloc(t, F32, len(q))
				pos := make([]int32, total)
				for i := range pos {
					pos[i] = int32(i)
				}
				// layer 2's expected content: first 4, last 39 of the 300-token prompt, then a ring of 40.
				var kept []int32
				for a := 0; a < total; a++ {
					if a < 4 || (a < 300 && a >= 300-39 && total-a <= 40) || (a >= 300 && total-a <= 40) {
						kept = append(kept, int32(a))
					}
				}
				for layer, m := range []kvcache.Policy{{}, {Sink: 4, Window: 50}, {}} {
					want := make([]float64, len(q))
					kpos := pos
					if layer == 2 {
						kpos = make([]int32, total)
						for i := range kpos {
							kpos[i] = -1
						}
						for _, a := range kept {
							kpos[a] = a
						}
					}
					refAttend(want, nil, q, []int32{qp}, allK, allV, kpos, m, p)
					if err := dev.Decode(ob, qb, qp, c.View(layer), m, p, nil); err != nil {
						t.Fatal(err)
					}
					compare(t, fmt.Sprintf("layer %d total %d", layer, total), download(t, ob, len(q)), want, decodeTol, 1e-4)
				}
				gotPos := make([]int32, c.View(2).Slots)
				if err := c.View(2).Pos.CopyToI32(gotPos); err != nil {
					t.Fatal(err)
				}
				n := 0
				for _, x := range gotPos {
					if x >= 0 {
						n++
					}
				}
				if n != len(kept) {
					t.Fatalf("converted layer holds %d tokens, want %d (%v)", n, len(kept), gotPos)
				}
				qb.Free()
				ob.Free()
			}
			if c.Bytes(1) != int64(54*(4*w+4)) {
				t.Fatalf("streaming Bytes = %d", c.Bytes(1))
			}
		})
	}
}

func TestLazyRatio(t *testing.T) {
	r := rand.New(rand.NewSource(5))
	cases := []struct {
		p attention.Params
		n int
		w layerselect.Window
	}{
		{layouts[2], 300, layerselect.Window{Sink: 4, Recent: 32, Last: 32}},
		{layouts[1], 1100, layerselect.Window{Sink: 4, Recent: 100, Last: 32}},
		{layouts[3], 90, layerselect.Window{Sink: 4, Recent: 32, Last: 200}}, // Last > n
		{layouts[0], 40, layerselect.Window{Sink: 8, Recent: 32, Last: 32}},  // n <= Sink+Recent → 1
	}
	for _, c := range cases {
		p, n := c.p, c.n
		t.Run(fmt.Sprintf("h%d_kv%d_d%d/n%d", p.Heads, p.KVHeads, p.HeadDim, n), func(t *testing.T) {
			qw, kw := p.Heads*p.HeadDim, p.KVHeads*p.HeadDim
			q := randVec(r, n*qw, 2)
			k := roundAll(randVec(r, n*kw, 1))
			v := roundAll(randVec(r, n*kw, 1))
			pos := make([]int32, n)
			for i := range pos {
				pos[i] = int32(i)
			}
			out, lse := make([]float64, n*qw), make([]float64, n*p.Heads)
			refAttend(out, lse, q, pos, k, v, pos, kvcache.Policy{}, p)
			want := refLazyRatio(q, k, lse, n, c.w, p)
			lse32 := make([]float32, len(lse))
			for i, x := range lse {
				lse32[i] = float32(x)
			}
			qb, kb, lb := upload(t, F32, q), upload(t, BF16, k), upload(t, F32, lse32)
			defer func() { qb.Free(); kb.Free(); lb.Free() }()
			got, err := dev.LazyRatio(qb, kb, lb, n, c.w, p)
			if err != nil {
				t.Fatal(err)
			}
			// float32 scores and the float32-rounded lse: 1e-4 relative on a mean of exp().
			if math.Abs(got-want) > 1e-4*max(1, want) {
				t.Fatalf("LazyRatio = %v, want %v", got, want)
			}
			t.Logf("ratio %.6f (oracle %.6f)", got, want)
		})
	}
}

// TestPrefillThenLazyRatio runs the pipeline as the model does: prefill's lse feeds the ratio.
func TestPrefillThenLazyRatio(t *testing.T) {
	r := rand.New(rand.NewSource(9))
	p := layouts[2]
	n := 700
	w := layerselect.Window{Sink: 4, Recent: 64, Last: 32}
	qw, kw := p.Heads*p.HeadDim, p.KVHeads*p.HeadDim
	q := roundAll(randVec(r, n*qw, 2))
	k := roundAll(randVec(r, n*kw, 1))
	v := roundAll(randVec(r, n*kw, 1))
	pos := make([]int32, n)
	for i := range pos {
		pos[i] = int32(i)
	}
	out, lse := make([]float64, n*qw), make([]float64, n*p.Heads)
	refAttend(out, lse, q, pos, k, v, pos, kvcache.Policy{}, p)
	want := refLazyRatio(q, k, lse, n, w, p)
	qb, kb, vb := upload(t, F32, q), upload(t, BF16, k), upload(t, BF16, v)
	ob, lb := alloc(t, F32, n*qw), alloc(t, F32, n*p.Heads)
	defer func() { qb.Free(); kb.Free(); vb.Free(); ob.Free(); lb.Free() }()
	if err := dev.Prefill(ob, qb, kb, vb, n, kvcache.Policy{}, p, lb); err != nil {
		t.Fatal(err)
	}
	got, err := dev.LazyRatio(qb, kb, lb, n, w, p)
	if err != nil {
		t.Fatal(err)
	}
	// the prefill lse carries up to 2e-3 absolute error: exp of it, 3e-3 relative.
	if math.Abs(got-want) > 3e-3*want {
		t.Fatalf("LazyRatio = %v, want %v", got, want)
	}
}

func TestUnsupported(t *testing.T) {
	b := alloc(t, F32, 4)
	defer b.Free()
	if err := dev.Prefill(b, b, nil, nil, 1, kvcache.Policy{}, attention.Params{Heads: 1, KVHeads: 1, HeadDim: 96}, nil); err == nil {
		t.Fatal("head dim 96 accepted")
	}
	if _, err := dev.NewCache(kvcache.Shape{KVHeads: 1, HeadDim: 64}, []kvcache.Policy{{Sink: -1, Window: 3}}, 0); err == nil {
		t.Fatal("negative sink accepted")
	}
}

// bothDecoders runs f with each decode form (3 is the default).
func bothDecoders(t *testing.T, f func(*testing.T)) {
	for _, form := range []int{3, 2, 1} {
		dev.decodeForm = form
		t.Run(fmt.Sprintf("decode%d", form), f)
	}
	dev.decodeForm = 0
	dev.decodeSplitMajor = true
	t.Run("decode3_split_major", f)
	dev.decodeSplitMajor = false
}
