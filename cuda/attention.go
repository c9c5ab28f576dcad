//go:build cuda

package cuda

import (
	"fmt"
	"math"

	"gorgonia.org/cu"

	"github.com/lighttransfer/lighttransfer-go/attention"
	"github.com/lighttransfer/lighttransfer-go/kvcache"
	"github.com/lighttransfer/lighttransfer-go/layerselect"
)

const log2e = 1.4426950408889634

// KV is a set of cache slots in device memory: Slots tokens in any order, K and V BF16
// [Slots][KVHeads*HeadDim] (or larger), Pos I32 [Slots] absolute positions (negative = empty).
// [Cache.View] returns one.
type KV struct {
	K, V, Pos *Buffer
	Slots     int
}

func checkParams(p attention.Params) (scale2 float32, err error) {
	if p.HeadDim != 64 && p.HeadDim != 128 {
		return 0, fmt.Errorf("%w: head dim %d (want 64 or 128)", ErrUnsupported, p.HeadDim)
	}
	if p.Heads <= 0 || p.KVHeads <= 0 || p.Heads%p.KVHeads != 0 {
		return 0, fmt.Errorf("%w: %d heads over %d KV heads", ErrUnsupported, p.Heads, p.KVHeads)
	}
	s := p.Scale
	if s == 0 {
		s = float32(1 / math.Sqrt(float64(p.HeadDim)))
	}
	return s * log2e, nil
}

func need(b *Buffer, t DType, n int, what string) {
	if b == nil || b.dt != t || b.n < n {
		got := "nil"
		if b != nil {
			got = fmt.Sprintf("%d × %v", b.n, b.dt)
		}
		panic(fmt.Sprintf("cuda: %s needs %d × %v, got %s", what, n, t, got))
	}
}

// Prefill computes causal (or streaming-masked, see [Mask]) attention of n queries at positions
// 0..n-1 over the keys and values of the same n tokens: out F32 [n][Heads*HeadDim], q F32
// [n][Heads*HeadDim], k, v BF16 [n][KVHeads*HeadDim]. If lse is not nil it receives F32
// [n][Heads] natural-log log-sum-exp of Scale*q·k over the visible keys (bf16-rounded q).
// The kernel is queued; it returns launch errors only. Panics on buffer sizes or types.
func (d *Device) Prefill(out, q, k, v *Buffer, n int, m kvcache.Policy, p attention.Params, lse *Buffer) error {
	scale2, err := checkParams(p)
	if err != nil {
		return err
	}
	if n <= 0 {
		return nil
	}
	qw, kw := p.Heads*p.HeadDim, p.KVHeads*p.HeadDim
	need(out, F32, n*qw, "Prefill out")
	need(q, F32, n*qw, "Prefill q")
	need(k, BF16, n*kw, "Prefill k")
	need(v, BF16, n*kw, "Prefill v")
	if lse != nil {
		need(lse, F32, n*p.Heads, "Prefill lse")
	}
	d.lock()
	defer d.unlock()
	form := d.prefillForm
	if form == 0 {
		form = 3
	}
	switch {
	case form == 1:
		return d.launch(fmt.Sprintf("lt_prefill_d%d", p.HeadDim), [3]int{(n + 63) / 64, p.Heads, 1}, 128, 0,
			out, lse, q, k, v, n, p.Heads, p.KVHeads, scale2, m.Sink, m.Window)
	case form == 3 && p.HeadDim == 64:
		return d.launch("lt_prefill3_d64", [3]int{(n + 127) / 128, p.Heads, 1}, 256, 0,
			out, lse, q, k, v, n, p.Heads, p.KVHeads, scale2, m.Sink, m.Window)
	}
	return d.launch(fmt.Sprintf("lt_prefill2_d%d", p.HeadDim), [3]int{(n + 127) / 128, p.Heads, 1}, 256, 0,
		out, lse, q, k, v, n, p.Heads, p.KVHeads, scale2, m.Sink, m.Window)
}

// maxSplits bounds the number of key-axis splits of a decode.
const maxSplits = 1024

// decodeSplits returns the slots per split and the number of splits for a decode over slots
// cache slots with blocks (KV head × head group) blocks per split.
func decodeSplits(slots, blocks, sms int) (perSplit, nsplit int) {
	perSplit = (slots*blocks + 2*sms - 1) / (2 * sms)
	perSplit = max(64, (perSplit+31)/32*32)
	if n := (slots + maxSplits - 1) / maxSplits; perSplit < n {
		perSplit = (n + 31) / 32 * 32
	}
	return perSplit, (slots + perSplit - 1) / perSplit
}

func (d *Device) grow(b **Buffer, n int) error {
	if *b != nil && (*b).n >= n {
		return nil
	}
	if *b != nil {
		if err := cu.MemFree((*b).ptr); err != nil {
			return fmt.Errorf("cuda: free: %w", err)
		}
		*b = nil
	}
	nb, err := d.alloc(F32, n)
	if err != nil {
		return err
	}
	*b = nb
	return nil
}

// Decode computes attention of one query at absolute position pos over the cache slots kv
// (flash-decoding: the key axis is split over thread blocks, a second kernel combines the
// partial results): out F32 [Heads*HeadDim], q F32 [Heads*HeadDim]. Slots whose position is
// negative or not visible under m are ignored. If lse is not nil it receives F32 [Heads].
// Queued; returns launch or workspace allocation errors. Panics on buffer sizes or types.
func (d *Device) Decode(out, q *Buffer, pos int32, kv KV, m kvcache.Policy, p attention.Params, lse *Buffer) error {
	scale2, err := checkParams(p)
	if err != nil {
		return err
	}
	qw, kw := p.Heads*p.HeadDim, p.KVHeads*p.HeadDim
	need(out, F32, qw, "Decode out")
	need(q, F32, qw, "Decode q")
	if lse != nil {
		need(lse, F32, p.Heads, "Decode lse")
	}
	slots := kv.Slots
	if slots > 0 {
		need(kv.K, BF16, slots*kw, "Decode kv.K")
		need(kv.V, BF16, slots*kw, "Decode kv.V")
		need(kv.Pos, I32, slots, "Decode kv.Pos")
	}
	g := p.Heads / p.KVHeads
	form := d.decodeForm
	if form == 0 {
		form = 3
	}
	if form == 3 && p.HeadDim == 64 {
		form = 2 // the third form differs only for head dim 128
	}
	gmax := 8
	if form > 1 && p.HeadDim == 128 {
		gmax = 4
	}
	gm := gmax
	switch {
	case g <= 1:
		gm = 1
	case g <= 2:
		gm = 2
	case g <= 4:
		gm = 4
	}
	groups := (g + gm - 1) / gm
	var perSplit, nsplit int
	switch form {
	case 1:
		perSplit, nsplit = decodeSplits(max(slots, 1), p.KVHeads*groups, d.sms)
	case 2:
		perSplit, nsplit = decodeSplits2(max(slots, 1), p.KVHeads*groups, 4*d.sms, 256)
	default:
		perSplit, nsplit = decodeSplits2(max(slots, 1), p.KVHeads*groups, 8*d.sms, 128)
	}
	d.lock()
	defer d.unlock()
	if err := d.grow(&d.opart, nsplit*qw); err != nil {
		return err
	}
	if err := d.grow(&d.mpart, nsplit*p.Heads); err != nil {
		return err
	}
	if err := d.grow(&d.lpart, nsplit*p.Heads); err != nil {
		return err
	}
	var kp, vp, pp cu.DevicePtr
	if slots > 0 {
		kp, vp, pp = kv.K.ptr, kv.V.ptr, kv.Pos.ptr
	}
	if form == 1 {
		name := fmt.Sprintf("lt_decode_d%d_g%d", p.HeadDim, gm)
		if err := d.launch(name, [3]int{nsplit, p.KVHeads, groups}, 256, 0,
			d.opart, d.mpart, d.lpart, q, kp, vp, pp, slots, pos, p.Heads, p.KVHeads, scale2, m.Sink, m.Window, perSplit); err != nil {
			return err
		}
		return d.launch("lt_decode_combine", [3]int{p.Heads, 1, 1}, p.HeadDim, 0,
			out, lse, d.opart, d.mpart, d.lpart, nsplit, p.Heads, p.HeadDim)
	}
	name := fmt.Sprintf("lt_decode%d_d%d_g%d", form, p.HeadDim, gm)
	grid, kvfast := [3]int{p.KVHeads, nsplit, groups}, 1
	if d.decodeSplitMajor {
		grid, kvfast = [3]int{nsplit, p.KVHeads, groups}, 0
	}
	if err := d.launch(name, grid, 128, 0,
		d.opart, d.mpart, d.lpart, q, kp, vp, pp, slots, pos, p.Heads, p.KVHeads, scale2, m.Sink, m.Window, perSplit, kvfast); err != nil {
		return err
	}
	return d.launch("lt_decode_combine2", [3]int{p.Heads, 1, 1}, 256, 0,
		out, lse, d.opart, d.mpart, d.lpart, nsplit, p.Heads, p.HeadDim)
}

// decodeSplits2 sizes the splits of the second and third decode forms: about target blocks in
// all, at least minPer slots per block, at most maxSplits splits.
func decodeSplits2(slots, blocks, target, minPer int) (perSplit, nsplit int) {
	perSplit = (slots*blocks + target - 1) / target
	perSplit = max(minPer, (perSplit+63)/64*64)
	if n := (slots + maxSplits - 1) / maxSplits; perSplit < n {
		perSplit = (n + 63) / 64 * 64
	}
	return perSplit, (slots + perSplit - 1) / perSplit
}

// LazyRatio computes the lazy ratio of docs/method.md §2 (paper Eq. 1) from the prompt's queries q F32
// [n][Heads*HeadDim], keys k BF16 [n][KVHeads*HeadDim] (both after RoPE) and the prefill's lse
// F32 [n][Heads]: the mean over heads and the last w.Last queries of the softmax mass on
// S = [0, w.Sink) ∪ [n-w.Recent, n), causal. Returns 1 when n <= w.Sink+w.Recent; w.Last > n
// uses all n queries. Waits for the result. Panics on buffer sizes or types.
func (d *Device) LazyRatio(q, k, lse *Buffer, n int, w layerselect.Window, p attention.Params) (float64, error) {
	scale2, err := checkParams(p)
	if err != nil {
		return 0, err
	}
	if n <= w.Sink+w.Recent {
		return 1, nil
	}
	last := min(w.Last, n)
	if last <= 0 {
		return 1, nil
	}
	need(q, F32, n*p.Heads*p.HeadDim, "LazyRatio q")
	need(k, BF16, n*p.KVHeads*p.HeadDim, "LazyRatio k")
	need(lse, F32, n*p.Heads, "LazyRatio lse")
	d.lock()
	defer d.unlock()
	cnt := last * p.Heads
	if err := d.grow(&d.mass, cnt); err != nil {
		return 0, err
	}
	if err := d.launch(fmt.Sprintf("lt_lazy_d%d", p.HeadDim), [3]int{last, p.Heads, 1}, 128, 0,
		d.mass, q, k, lse, n, p.Heads, p.KVHeads, scale2, w.Sink, w.Recent, last); err != nil {
		return 0, err
	}
	if cap(d.massHost) < cnt {
		d.massHost = make([]float32, cnt)
	}
	mh := d.massHost[:cnt]
	if err := cu.MemcpyDtoH(unsafePtr(mh), d.mass.ptr, int64(cnt)*4); err != nil {
		return 0, fmt.Errorf("cuda: copy from device: %w", err)
	}
	var s float64
	for _, x := range mh {
		s += float64(x)
	}
	return s / float64(cnt), nil
}

// ToBF16 rounds the first n elements of the F32 buffer src into the BF16 buffer dst (round to
// nearest even). Queued.
func (d *Device) ToBF16(dst, src *Buffer, n int) error {
	need(dst, BF16, n, "ToBF16 dst")
	need(src, F32, n, "ToBF16 src")
	if n == 0 {
		return nil
	}
	d.lock()
	defer d.unlock()
	blocks := min((n+255)/256, d.sms*8)
	return d.launch("lt_to_bf16", [3]int{blocks, 1, 1}, 256, 0, dst, src, int64(n))
}
