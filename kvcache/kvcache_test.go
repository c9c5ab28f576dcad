package kvcache_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lighttransfer/lighttransfer-go/kvcache"
)

// tok is one token as the naive model sees it.
type tok struct {
	k, v []float32
	pos  int32
}

// naiveLayer is the oracle: plain slices, no blocks, no ring arithmetic.
// Streaming rule: the first Sink tokens ever appended stay (sink); of the
// others only the last Window stay (ring, oldest first).
type naiveLayer struct {
	init, policy kvcache.Policy
	all          []tok // full layers: every token in arrival order
	sink, ring   []tok // streaming layers
	capacity     int   // slots the real cache should report as allocated
}

func (l *naiveLayer) append(t tok, bt int) {
	p := l.policy
	if !p.IsStreaming() {
		l.all = append(l.all, t)
		l.capacity = max(l.capacity, (len(l.all)+bt-1)/bt*bt)
		return
	}
	l.capacity = p.Sink + p.Window
	if len(l.sink) < p.Sink {
		l.sink = append(l.sink, t)
		return
	}
	l.ring = append(l.ring, t)
	if len(l.ring) > p.Window {
		l.ring = slices.Clone(l.ring[1:])
	}
}

// convert keeps the first Sink and the last Window-1 tokens (arrival order).
func (l *naiveLayer) convert(p kvcache.Policy) {
	all := l.all
	l.policy, l.all = p, nil
	ns := min(p.Sink, len(all))
	l.sink = slices.Clone(all[:ns])
	rest := all[ns:]
	l.ring = slices.Clone(rest[max(0, len(rest)-(p.Window-1)):])
	l.capacity = 0
	if len(all) > 0 {
		l.capacity = p.Sink + p.Window
	}
}

func (l *naiveLayer) reset() {
	if l.policy != l.init {
		l.capacity = 0
	}
	l.policy = l.init
	l.all, l.sink, l.ring = nil, nil, nil
}

func (l *naiveLayer) expected() []tok {
	if !l.policy.IsStreaming() {
		return l.all
	}
	return append(slices.Clone(l.sink), l.ring...)
}

type naiveCache struct {
	layers []naiveLayer
	bt     int
}

func newNaive(policies []kvcache.Policy, bt int) *naiveCache {
	n := &naiveCache{bt: bt, layers: make([]naiveLayer, len(policies))}
	for i, p := range policies {
		n.layers[i] = naiveLayer{init: p, policy: p}
	}
	return n
}

// makeTokens returns count fresh tokens with random k, v and unique positions.
func makeTokens(rng *rand.Rand, width, count int, next *int32) (k, v []float32, pos []int32, toks []tok) {
	k = make([]float32, count*width)
	v = make([]float32, count*width)
	pos = make([]int32, count)
	for i := range k {
		k[i] = rng.Float32()*2 - 1
		v[i] = rng.Float32()*2 - 1
	}
	for i := range pos {
		pos[i] = *next
		*next++
		// The oracle gets its own copies, so callers may scribble over k and v.
		toks = append(toks, tok{k: slices.Clone(k[i*width : (i+1)*width]), v: slices.Clone(v[i*width : (i+1)*width]), pos: pos[i]})
	}
	return k, v, pos, toks
}

// checkView compares the union of the view's segments with the expected tokens:
// same positions (no duplicates), and each position's k and v bit-equal.
func checkView(t *testing.T, c *kvcache.Cache, layer, width int, want []tok, msg string) {
	t.Helper()
	got := make(map[int32]tok, len(want))
	view := c.View(layer)
	for s := range view.NumSegments() {
		k, v, pos := view.Segment(s)
		if len(pos) == 0 || len(k) != len(pos)*width || len(v) != len(pos)*width {
			t.Fatalf("%s: segment %d: %d positions, %d k, %d v floats", msg, s, len(pos), len(k), len(v))
		}
		for i, p := range pos {
			if _, dup := got[p]; dup {
				t.Fatalf("%s: position %d twice", msg, p)
			}
			got[p] = tok{k: k[i*width : (i+1)*width], v: v[i*width : (i+1)*width], pos: p}
		}
	}
	if len(got) != len(want) || c.Len(layer) != len(want) {
		t.Fatalf("%s: view has %d tokens, Len %d, want %d", msg, len(got), c.Len(layer), len(want))
	}
	for _, w := range want {
		g, ok := got[w.pos]
		if !ok {
			t.Fatalf("%s: position %d missing", msg, w.pos)
		}
		// Values are copied bit for bit: exact comparison.
		if !slices.Equal(w.k, g.k) || !slices.Equal(w.v, g.v) {
			t.Fatalf("%s: position %d: k %v v %v, want k %v v %v", msg, w.pos, g.k, g.v, w.k, w.v)
		}
	}
}

func checkUsage(t *testing.T, c *kvcache.Cache, n *naiveCache, s kvcache.Shape, msg string) {
	t.Helper()
	u := c.Usage()
	require.Equal(t, u.Bytes, c.Bytes(), "Bytes must equal Usage().Bytes")
	require.Len(t, u.Layers, len(n.layers), msg)
	var tokens, bytes int64
	for i := range n.layers {
		l := &n.layers[i]
		lu := u.Layers[i]
		require.Equal(t, l.policy, lu.Policy, "%s: layer %d policy", msg, i)
		require.Equal(t, len(l.expected()), lu.Tokens, "%s: layer %d tokens", msg, i)
		require.Equal(t, l.capacity, lu.Capacity, "%s: layer %d capacity", msg, i)
		require.Equal(t, int64(l.capacity)*kvcache.SlotBytes(s), lu.Bytes, "%s: layer %d bytes", msg, i)
		tokens += int64(lu.Tokens)
		bytes += lu.Bytes
	}
	require.Equal(t, tokens, u.Tokens, msg)
	require.Equal(t, bytes, u.Bytes, msg)
	// Each held token has one key and one value of Width float32s.
	require.Equal(t, tokens*2*int64(s.KVHeads*s.HeadDim)*4, u.DataBytes, msg)
}

func randomPolicy(rng *rand.Rand) kvcache.Policy {
	if rng.IntN(3) == 0 {
		return kvcache.Full()
	}
	return kvcache.Streaming(rng.IntN(5), 1+rng.IntN(9))
}

// TestRandomAgainstNaive drives a cache and the naive model with the same
// seeded random operations (appends of 0..many tokens, converts, resets,
// clones) and compares views and usage after every step. Values are copied
// bit for bit, so comparisons are exact.
func TestRandomAgainstNaive(t *testing.T) {
	for seed := range uint64(40) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			s := kvcache.Shape{KVHeads: 1 + rng.IntN(3), HeadDim: 1 + rng.IntN(4)}
			w := s.Width()
			bt := []int{1, 2, 3, 5, 8, 256}[rng.IntN(6)]
			policies := make([]kvcache.Policy, 1+rng.IntN(5))
			for i := range policies {
				policies[i] = randomPolicy(rng)
			}
			c, err := kvcache.New(s, policies, kvcache.WithBlockTokens(bt))
			require.NoError(t, err)
			n := newNaive(policies, bt)
			require.Equal(t, len(policies), c.Layers())
			next := int32(0)

			var snap *kvcache.Cache
			var snapWant [][]tok
			for step := range 200 {
				layer := rng.IntN(len(policies))
				msg := fmt.Sprintf("step %d layer %d", step, layer)
				switch op := rng.IntN(20); {
				case op == 0: // convert a full layer
					if n.layers[layer].policy.IsStreaming() {
						continue
					}
					p := kvcache.Streaming(rng.IntN(4), 1+rng.IntN(6))
					require.NoError(t, c.Convert(layer, p), msg)
					n.layers[layer].convert(p)
				case op == 1 && step%7 == 0:
					c.Reset()
					for i := range n.layers {
						n.layers[i].reset()
					}
				case op == 2: // snapshot via Clone; later mutations must not reach it
					snap = c.Clone()
					snapWant = make([][]tok, len(n.layers))
					for i := range n.layers {
						snapWant[i] = slices.Clone(n.layers[i].expected())
					}
					require.Equal(t, c.Usage(), snap.Usage(), msg)
				default:
					// Mostly small batches (many block/ring boundaries), sometimes big ones.
					count := rng.IntN(min(3*bt, 30))
					if rng.IntN(10) == 0 {
						count = rng.IntN(3*bt + 20)
					}
					k, v, pos, toks := makeTokens(rng, w, count, &next)
					require.NoError(t, c.Append(layer, k, v, pos), msg)
					for _, tk := range toks {
						n.layers[layer].append(tk, bt)
					}
					// The cache must have copied: scribbling over the inputs changes nothing.
					for i := range k {
						k[i], v[i] = 99, 99
					}
				}
				for i := range n.layers {
					l := &n.layers[i]
					require.Equal(t, l.policy, c.Policy(i), msg)
					if l.policy.IsStreaming() {
						require.LessOrEqual(t, c.Len(i), l.policy.MaxTokens(), msg)
					}
				}
				checkUsage(t, c, n, s, msg)
				for i := range n.layers {
					checkView(t, c, i, w, n.layers[i].expected(), fmt.Sprintf("%s view %d", msg, i))
				}
				if snap != nil {
					for i := range snapWant {
						checkView(t, snap, i, w, snapWant[i], fmt.Sprintf("%s clone view %d", msg, i))
					}
				}
			}
		})
	}
}

// TestAppendCopiesInputs: Append copies its inputs.
func TestAppendCopiesInputs(t *testing.T) {
	s := kvcache.Shape{KVHeads: 1, HeadDim: 2}
	for _, p := range []kvcache.Policy{kvcache.Full(), kvcache.Streaming(1, 2)} {
		c, err := kvcache.New(s, []kvcache.Policy{p})
		require.NoError(t, err)
		k := []float32{1, 2, 3, 4}
		v := []float32{5, 6, 7, 8}
		pos := []int32{0, 1}
		require.NoError(t, c.Append(0, k, v, pos))
		k[0], v[0], pos[0] = -1, -1, -1
		checkView(t, c, 0, 2, []tok{{k: []float32{1, 2}, v: []float32{5, 6}, pos: 0}, {k: []float32{3, 4}, v: []float32{7, 8}, pos: 1}}, p.String())
	}
}

// TestStreamingBatchEqualsOneByOne: a streaming layer fed a batch must end in
// the same state as one fed the same tokens one at a time, and keep behaving
// the same for later appends.
func TestStreamingBatchEqualsOneByOne(t *testing.T) {
	s := kvcache.Shape{KVHeads: 2, HeadDim: 2}
	rng := rand.New(rand.NewPCG(3, 3))
	for _, p := range []kvcache.Policy{kvcache.Streaming(0, 1), kvcache.Streaming(2, 3), kvcache.Streaming(4, 7), kvcache.Streaming(1, 16)} {
		for _, batch := range []int{1, 2, 3, 6, 7, 8, 20, 40} {
			a, _ := kvcache.New(s, []kvcache.Policy{p})
			b, _ := kvcache.New(s, []kvcache.Policy{p})
			n := newNaive([]kvcache.Policy{p}, 1)
			next := int32(0)
			for range 4 {
				k, v, pos, toks := makeTokens(rng, s.Width(), batch, &next)
				require.NoError(t, a.Append(0, k, v, pos))
				for i := range pos {
					require.NoError(t, b.Append(0, k[i*4:(i+1)*4], v[i*4:(i+1)*4], pos[i:i+1]))
					n.layers[0].append(toks[i], 1)
				}
				msg := fmt.Sprintf("%v batch %d", p, batch)
				checkView(t, a, 0, 4, n.layers[0].expected(), msg+" batch")
				checkView(t, b, 0, 4, n.layers[0].expected(), msg+" one-by-one")
			}
		}
	}
}

// TestConvert checks the exact survivors of Convert (first Sink, last Window-1
// in arrival order), that Usage drops at once, and that later appends keep at
// most Sink+Window tokens following the streaming rule.
func TestConvert(t *testing.T) {
	s := kvcache.Shape{KVHeads: 2, HeadDim: 4}
	w := s.Width()
	tests := []struct {
		name      string
		n         int
		sink, win int
		bt        int
	}{
		{"empty", 0, 4, 8, 256},
		{"fewer than sink", 3, 4, 8, 4},
		{"exactly sink", 4, 4, 8, 4},
		{"fits", 10, 4, 8, 4},
		{"sink+window-1", 11, 4, 8, 4},
		{"sink+window", 12, 4, 8, 4},
		{"long", 1000, 4, 8, 256},
		{"no sink", 100, 0, 5, 16},
		{"window 1", 50, 3, 1, 7},
		{"big sink", 50, 60, 2, 7},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(tc.n), 11))
			pol := []kvcache.Policy{kvcache.Full(), kvcache.Full()}
			c, err := kvcache.New(s, pol, kvcache.WithBlockTokens(tc.bt))
			require.NoError(t, err)
			next := int32(100)
			k, v, pos, toks := makeTokens(rng, w, tc.n, &next)
			require.NoError(t, c.Append(0, k, v, pos))
			require.NoError(t, c.Append(1, k, v, pos))
			before := c.Usage()

			p := kvcache.Streaming(tc.sink, tc.win)
			require.NoError(t, c.Convert(0, p))
			require.Equal(t, p, c.Policy(0))
			require.Equal(t, kvcache.Full(), c.Policy(1))

			ns := min(tc.sink, tc.n)
			want := slices.Clone(toks[:ns])
			want = append(want, toks[max(ns, tc.n-(tc.win-1)):]...)
			checkView(t, c, 0, w, want, "after convert")
			checkView(t, c, 1, w, toks, "other layer")

			after := c.Usage()
			wantCap := 0
			if tc.n > 0 {
				wantCap = tc.sink + tc.win
			}
			require.Equal(t, wantCap, after.Layers[0].Capacity)
			require.Equal(t, int64(wantCap)*kvcache.SlotBytes(s), after.Layers[0].Bytes)
			require.Equal(t, before.Layers[1], after.Layers[1])
			if tc.n > 2*(tc.sink+tc.win) && tc.n >= tc.bt {
				require.Less(t, after.Bytes, before.Bytes, "usage must drop immediately")
			}

			// Further appends: streaming rule on top of the converted state.
			n := newNaive([]kvcache.Policy{kvcache.Full()}, tc.bt)
			for _, tk := range toks {
				n.layers[0].append(tk, tc.bt)
			}
			n.layers[0].convert(p)
			for step := range 30 {
				k, v, pos, more := makeTokens(rng, w, rng.IntN(4), &next)
				require.NoError(t, c.Append(0, k, v, pos))
				for _, tk := range more {
					n.layers[0].append(tk, tc.bt)
				}
				require.LessOrEqual(t, c.Len(0), tc.sink+tc.win)
				checkView(t, c, 0, w, n.layers[0].expected(), fmt.Sprint("append after convert ", step))
			}
		})
	}
}

func TestErrors(t *testing.T) {
	s := kvcache.Shape{KVHeads: 2, HeadDim: 2}
	tests := []struct {
		name string
		run  func() error
		want error
		msg  string
	}{
		{"bad shape", func() error {
			_, err := kvcache.New(kvcache.Shape{KVHeads: 0, HeadDim: 2}, []kvcache.Policy{{}})
			return err
		}, kvcache.ErrShape, "kvcache: shape KVHeads 0"},
		{"bad block", func() error {
			_, err := kvcache.New(s, []kvcache.Policy{{}}, kvcache.WithBlockTokens(0))
			return err
		}, kvcache.ErrShape, "kvcache: block tokens 0"},
		{"no layers", func() error { _, err := kvcache.New(s, nil); return err }, kvcache.ErrLayer, "kvcache: no layers"},
		{"negative sink", func() error {
			_, err := kvcache.New(s, []kvcache.Policy{{}, {}, {}, kvcache.Streaming(-1, 4)})
			return err
		}, kvcache.ErrPolicy, "kvcache: layer 3: policy sink -1 window 4"},
		{"sink without window", func() error { _, err := kvcache.New(s, []kvcache.Policy{{Sink: 4}}); return err }, kvcache.ErrPolicy, "kvcache: layer 0: policy sink 4 window 0"},
		{"negative window", func() error { _, err := kvcache.New(s, []kvcache.Policy{{Window: -2}}); return err }, kvcache.ErrPolicy, "kvcache: layer 0: policy sink 0 window -2"},
	}
	c, err := kvcache.New(s, []kvcache.Policy{kvcache.Full(), kvcache.Streaming(1, 2), kvcache.Full(), kvcache.Full()})
	require.NoError(t, err)
	k4 := make([]float32, 4)
	more := []struct {
		name string
		run  func() error
		want error
		msg  string
	}{
		{"append layer range", func() error { return c.Append(4, k4, k4, []int32{0}) }, kvcache.ErrLayer, "kvcache: layer 4: out of range [0,4)"},
		{"append negative layer", func() error { return c.Append(-1, k4, k4, []int32{0}) }, kvcache.ErrLayer, "kvcache: layer -1"},
		{"append k size", func() error { return c.Append(3, k4[:3], k4, []int32{0}) }, kvcache.ErrShape, "kvcache: layer 3: append of 1 positions"},
		{"append v size", func() error { return c.Append(3, k4, k4, []int32{0, 1}) }, kvcache.ErrShape, "kvcache: layer 3:"},
		{"convert range", func() error { return c.Convert(9, kvcache.Streaming(1, 2)) }, kvcache.ErrLayer, "kvcache: layer 9"},
		{"convert to full", func() error { return c.Convert(0, kvcache.Full()) }, kvcache.ErrPolicy, "kvcache: layer 0: convert to full"},
		{"convert invalid", func() error { return c.Convert(0, kvcache.Streaming(-1, 2)) }, kvcache.ErrPolicy, "kvcache: layer 0: convert: policy sink -1"},
		{"convert streaming", func() error { return c.Convert(1, kvcache.Streaming(1, 2)) }, kvcache.ErrPolicy, "kvcache: layer 1: convert: already streaming(sink=1,window=2)"},
		{"convert twice", func() error {
			if err := c.Convert(2, kvcache.Streaming(1, 2)); err != nil {
				return err
			}
			return c.Convert(2, kvcache.Streaming(1, 3))
		}, kvcache.ErrPolicy, "kvcache: layer 2: convert: already"},
	}
	tests = append(tests, more...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			require.Error(t, err)
			require.True(t, errors.Is(err, tc.want), "%v is not %v", err, tc.want)
			require.Contains(t, err.Error(), tc.msg)
		})
	}
	require.Panics(t, func() { c.Len(4) })
	require.Panics(t, func() { c.View(-1) })
	require.Panics(t, func() { c.Policy(7) })
	require.Panics(t, func() { c.View(0).Segment(0) }) // empty layer: no segments
	require.Zero(t, kvcache.View{}.NumSegments())
}

func TestPolicy(t *testing.T) {
	tests := []struct {
		p         kvcache.Policy
		valid     bool
		streaming bool
		max       int
		str       string
	}{
		{kvcache.Full(), true, false, 0, "full"},
		{kvcache.Streaming(4, 1020), true, true, 1024, "streaming(sink=4,window=1020)"},
		{kvcache.Streaming(0, 1), true, true, 1, "streaming(sink=0,window=1)"},
		{kvcache.Streaming(4, 0), false, false, 0, "invalid(sink=4,window=0)"},
		{kvcache.Streaming(-1, 3), false, true, 2, "streaming(sink=-1,window=3)"},
		{kvcache.Streaming(0, -3), false, false, 0, "invalid(sink=0,window=-3)"},
	}
	for _, tc := range tests {
		require.Equal(t, tc.valid, tc.p.Validate() == nil, tc.str)
		require.Equal(t, tc.streaming, tc.p.IsStreaming(), tc.str)
		require.Equal(t, tc.max, tc.p.MaxTokens(), tc.str)
		require.Equal(t, tc.str, tc.p.String())
	}
	require.Equal(t, kvcache.Policy{}, kvcache.Full())
	require.Equal(t, 6, kvcache.Shape{KVHeads: 2, HeadDim: 3}.Width())
	require.Equal(t, int64(2*6*4+4), kvcache.SlotBytes(kvcache.Shape{KVHeads: 2, HeadDim: 3}))
}

// TestEstimateEqualsUsage: for many shapes, policy mixes, block sizes and
// token counts, Estimate equals the Bytes a fresh cache reports after that many
// tokens were appended to every layer (in random batch sizes).
func TestEstimateEqualsUsage(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	for trial := range 60 {
		s := kvcache.Shape{KVHeads: 1 + rng.IntN(4), HeadDim: 1 + rng.IntN(8)}
		policies := make([]kvcache.Policy, 1+rng.IntN(6))
		for i := range policies {
			policies[i] = randomPolicy(rng)
		}
		bt := []int{1, 3, 16, 256}[rng.IntN(4)]
		var opts []kvcache.Option
		if bt != kvcache.DefaultBlockTokens || rng.IntN(2) == 0 {
			opts = append(opts, kvcache.WithBlockTokens(bt))
		}
		c, err := kvcache.New(s, policies, opts...)
		require.NoError(t, err)
		require.Zero(t, kvcache.Estimate(s, policies, 0, opts...))
		require.Zero(t, c.Usage().Bytes)
		total, next := 0, int32(0)
		for total < 700 {
			count := 1 + rng.IntN(40)
			k, v, pos, _ := makeTokens(rng, s.Width(), count, &next)
			for l := range policies {
				require.NoError(t, c.Append(l, k, v, pos))
			}
			total += count
			require.Equal(t, kvcache.Estimate(s, policies, total, opts...), c.Usage().Bytes,
				"trial %d: %d tokens, policies %v, block %d", trial, total, policies, bt)
		}
	}
	// Hand-checked value: Qwen2.5-0.5B-like shape (2 KV heads × 64), 24 layers,
	// 12 full + 12 streaming(4,1020), 5000 tokens, blocks of 256:
	// full: ceil(5000/256)=20 blocks = 5120 slots; slot = 2·128·4+4 = 1028 bytes.
	s := kvcache.Shape{KVHeads: 2, HeadDim: 64}
	var pol []kvcache.Policy
	for i := range 24 {
		if i%2 == 0 {
			pol = append(pol, kvcache.Full())
		} else {
			pol = append(pol, kvcache.Streaming(4, 1020))
		}
	}
	require.Equal(t, int64(12*5120*1028+12*1024*1028), kvcache.Estimate(s, pol, 5000))
	require.Zero(t, kvcache.Estimate(s, pol, -5))
	require.Equal(t, kvcache.Estimate(s, pol, 5000), kvcache.Estimate(s, pol, 5000, kvcache.WithBlockTokens(0)))
	require.Zero(t, testing.AllocsPerRun(100, func() { kvcache.Estimate(s, pol, 5000) }))
}

func TestResetAndClone(t *testing.T) {
	s := kvcache.Shape{KVHeads: 1, HeadDim: 2}
	rng := rand.New(rand.NewPCG(9, 9))
	c, err := kvcache.New(s, []kvcache.Policy{kvcache.Full(), kvcache.Streaming(2, 3), kvcache.Full()}, kvcache.WithBlockTokens(4))
	require.NoError(t, err)
	next := int32(0)
	k, v, pos, _ := makeTokens(rng, 2, 10, &next)
	for l := range 3 {
		require.NoError(t, c.Append(l, k, v, pos))
	}
	require.NoError(t, c.Convert(2, kvcache.Streaming(1, 2)))
	before := c.Usage()
	d := c.Clone()
	require.Equal(t, before, d.Usage())

	c.Reset()
	u := c.Usage()
	require.Zero(t, u.Tokens)
	require.Equal(t, kvcache.Full(), c.Policy(2), "Reset restores the policies given to New")
	require.Equal(t, 12, u.Layers[0].Capacity, "full blocks kept for reuse")
	require.Equal(t, 5, u.Layers[1].Capacity, "streaming slots kept for reuse")
	require.Zero(t, u.Layers[2].Capacity, "converted layer's slots released")
	for l := range 3 {
		require.Zero(t, c.Len(l))
		require.Zero(t, c.View(l).NumSegments())
	}
	// The clone is independent of the reset.
	require.Equal(t, before, d.Usage())
	require.Equal(t, 10, d.Len(0))
	require.Equal(t, kvcache.Streaming(1, 2), d.Policy(2))
}

// TestNoAllocs: appending one token in steady state and iterating a view do not
// allocate.
func TestNoAllocs(t *testing.T) {
	s := kvcache.Shape{KVHeads: 2, HeadDim: 64}
	c, err := kvcache.New(s, []kvcache.Policy{kvcache.Full(), kvcache.Streaming(4, 60)}, kvcache.WithBlockTokens(64))
	require.NoError(t, err)
	k := make([]float32, s.Width())
	v := make([]float32, s.Width())
	pos := []int32{0}
	for range 200 { // allocate blocks and streaming slots
		pos[0]++
		require.NoError(t, c.Append(0, k, v, pos))
		require.NoError(t, c.Append(1, k, v, pos))
	}
	require.Zero(t, testing.AllocsPerRun(500, func() {
		pos[0]++
		_ = c.Append(1, k, v, pos)
	}), "streaming append")
	c.Reset() // full blocks are kept: refilling them does not allocate
	require.Zero(t, testing.AllocsPerRun(150, func() {
		pos[0]++
		_ = c.Append(0, k, v, pos)
	}), "full append into kept blocks")
	var sum float32
	require.Zero(t, testing.AllocsPerRun(100, func() {
		for l := range 2 {
			view := c.View(l)
			for i := range view.NumSegments() {
				kk, _, _ := view.Segment(i)
				sum += kk[0]
			}
		}
	}), "view iteration")
}

// kv mirrors attention.KV (which this package must not import): View has to
// satisfy it structurally.
type kv interface {
	NumSegments() int
	Segment(i int) (k, v []float32, pos []int32)
}

var _ kv = kvcache.View{}

// TestPolicyVisible: the mask a layer's queries use, read from its policy.
func TestPolicyVisible(t *testing.T) {
	for _, tc := range []struct {
		p      kvcache.Policy
		qp, kp int32
		want   bool
	}{
		{kvcache.Full(), 5, 5, true}, {kvcache.Full(), 5, 6, false}, {kvcache.Full(), 5, 0, true},
		{kvcache.Full(), 5, -1, false},
		{kvcache.Streaming(0, 1), 5, 5, true}, {kvcache.Streaming(0, 1), 5, 4, false},
		{kvcache.Streaming(2, 3), 10, 1, true}, {kvcache.Streaming(2, 3), 10, 2, false},
		{kvcache.Streaming(2, 3), 10, 7, false}, {kvcache.Streaming(2, 3), 10, 8, true},
		{kvcache.Streaming(2, 3), 10, 11, false}, {kvcache.Streaming(4, 1020), 1023, 0, true},
		{kvcache.Streaming(4, 1020), 2000, 980, false}, {kvcache.Streaming(4, 1020), 2000, 981, true},
	} {
		require.Equal(t, tc.want, tc.p.Visible(tc.qp, tc.kp), "%v q=%d k=%d", tc.p, tc.qp, tc.kp)
	}
}

// Every layer kind satisfies attention's KV too, through the Layer interface.
var _ kv = kvcache.Layer(nil)
