//go:build cuda

package cuda

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/lighttransfer/lighttransfer-go/attention"
	"github.com/lighttransfer/lighttransfer-go/kvcache"
)

// TestAgainstAttentionPackage compares the default prefill and decode kernels with the CPU
// attention package on the same bf16-rounded inputs (the naive float64 oracle in ref_test.go
// checks every form; this checks the GPU against the library's own CPU path). Tolerances as in
// cuda_test.go: the CPU kernel is float32 throughout, so only the GPU's bf16 P·V rounding
// (prefill) and accumulation order differ.
func TestAgainstAttentionPackage(t *testing.T) {
	r := rand.New(rand.NewSource(21))
	cases := []struct {
		p attention.Params
		n int
		m kvcache.Policy
	}{
		{attention.Params{Heads: 4, KVHeads: 4, HeadDim: 64}, 130, kvcache.Policy{}},
		{attention.Params{Heads: 8, KVHeads: 2, HeadDim: 128}, 257, kvcache.Policy{Sink: 4, Window: 32}},
		{attention.Params{Heads: 14, KVHeads: 2, HeadDim: 64}, 300, kvcache.Policy{}},
		{attention.Params{Heads: 7, KVHeads: 1, HeadDim: 128}, 77, kvcache.Policy{Sink: 2, Window: 9}},
	}
	for _, c := range cases {
		p, n, m := c.p, c.n, c.m
		t.Run(fmt.Sprintf("h%d_kv%d_d%d/n%d", p.Heads, p.KVHeads, p.HeadDim, n), func(t *testing.T) {
			ap := p
			qw, kw := p.Heads*p.HeadDim, p.KVHeads*p.HeadDim
			q := roundAll(randVec(r, n*qw, 1.5))
			k := roundAll(randVec(r, n*kw, 1))
			v := roundAll(randVec(r, n*kw, 1))
			want, wantLSE := make([]float32, n*qw), make([]float32, n*p.Heads)
			attention.Prefill(want, q, k, v, n, m.Sink, m.Window, ap, wantLSE)
			qb, kb, vb := upload(t, F32, q), upload(t, BF16, k), upload(t, BF16, v)
			ob, lb := alloc(t, F32, n*qw), alloc(t, F32, n*p.Heads)
			defer func() { qb.Free(); kb.Free(); vb.Free(); ob.Free(); lb.Free() }()
			if err := dev.Prefill(ob, qb, kb, vb, n, m, p, lb); err != nil {
				t.Fatal(err)
			}
			compare(t, "prefill out", download(t, ob, n*qw), widen(want), prefillOutTol, 0)
			compare(t, "prefill lse", download(t, lb, n*p.Heads), widen(wantLSE), prefillLSETol, 1e-4)

			// decode the last token over the same keys stored in shuffled slots
			pos := make([]int32, n)
			perm := r.Perm(n)
			ks, vs := make([]float32, n*kw), make([]float32, n*kw)
			for slot, tok := range perm {
				pos[slot] = int32(tok)
				copy(ks[slot*kw:(slot+1)*kw], k[tok*kw:(tok+1)*kw])
				copy(vs[slot*kw:(slot+1)*kw], v[tok*kw:(tok+1)*kw])
			}
			qd := randVec(r, qw, 1.5)
			wantD := make([]float32, qw)
			attention.Decode(wantD, qd, int32(n-1), attention.Segments{{K: ks, V: vs, Pos: pos}}, m.Sink, m.Window, ap)
			qdb, ksb, vsb, pb := upload(t, F32, qd), upload(t, BF16, ks), upload(t, BF16, vs), uploadI32(t, pos)
			odb := alloc(t, F32, qw)
			defer func() { qdb.Free(); ksb.Free(); vsb.Free(); pb.Free(); odb.Free() }()
			if err := dev.Decode(odb, qdb, int32(n-1), KV{K: ksb, V: vsb, Pos: pb, Slots: n}, m, p, nil); err != nil {
				t.Fatal(err)
			}
			compare(t, "decode out", download(t, odb, qw), widen(wantD), decodeTol, 1e-4)
		})
	}
}

func widen(x []float32) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}
