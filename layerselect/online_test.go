package layerselect_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lighttransfer/lighttransfer-go/layerselect"
)

func TestKeepCount(t *testing.T) {
	tests := []struct {
		layers int
		keep   float64
		want   int
	}{
		{5, 0.5, 3},
		{5, 0.6, 3},
		{32, 0.5, 16},
		{24, 0.25, 6},
		{10, 0.3, 3}, // 0.3·10 = 3.0000000000000004 in float64: the 1e-9 keeps it 3
		{3, 1.0 / 3, 1},
		{64, 0.7, 45},
		{1, 1, 1},
		{1, 0.01, 1},
		{7, 1, 7},
		{0, 0.5, 0},
		{4, 2, 4},          // clamped
		{4, -1, 0},         // clamped
		{4, math.NaN(), 0}, // not validated; clamped to 0
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, layerselect.KeepCount(tc.layers, tc.keep), "L %d keep %v", tc.layers, tc.keep)
	}
}

func TestNewOnlineErrors(t *testing.T) {
	for _, tc := range []struct {
		layers int
		keep   float64
		msg    string
	}{
		{4, 0, "layerselect: keep 0: must be in (0,1]"},
		{4, -0.5, "layerselect: keep -0.5"},
		{4, 1.5, "layerselect: keep 1.5"},
		{4, math.NaN(), "layerselect: keep NaN"},
		{0, 0.5, "layerselect: layers 0"},
	} {
		_, err := layerselect.NewOnline(tc.layers, tc.keep)
		require.Error(t, err)
		require.True(t, errors.Is(err, layerselect.ErrInvalid))
		require.Contains(t, err.Error(), tc.msg)
		if tc.layers > 0 {
			_, err = layerselect.TopLazy(make([]float64, tc.layers), tc.keep)
			require.ErrorIs(t, err, layerselect.ErrInvalid)
		}
	}
	_, err := layerselect.TopLazy(nil, 0.5)
	require.ErrorIs(t, err, layerselect.ErrInvalid)
}

// TestOnlineDesignExample: the stories260K ratios of docs/method.md §6, keep 3 of 5 full:
// the lazy layers are [1 3], chosen while layers 3 and 4 finish.
func TestOnlineDesignExample(t *testing.T) {
	ratios := []float64{0.72, 0.83, 0.656, 0.809, 0.532}
	o, err := layerselect.NewOnline(5, 0.6)
	require.NoError(t, err)
	var popped [][]int
	for l, r := range ratios {
		popped = append(popped, o.Observe(l, r))
	}
	require.Equal(t, [][]int{nil, nil, nil, {1}, {3}}, popped)
	require.Equal(t, []int{1, 3}, o.Lazy())
	top, err := layerselect.TopLazy(ratios, 0.6)
	require.NoError(t, err)
	require.Equal(t, []int{1, 3}, top)
}

func TestTopLazyTies(t *testing.T) {
	tests := []struct {
		name   string
		ratios []float64
		keep   float64
		want   []int
	}{
		{"all equal: lower indices lazy", []float64{1, 1, 1, 1}, 0.5, []int{0, 1}},
		{"tie at the boundary", []float64{0.5, 0.9, 0.7, 0.7, 0.1}, 0.6, []int{1, 2}},
		{"keep all", []float64{0.5, 0.9}, 1, []int{}},
		{"NaN least lazy", []float64{math.NaN(), 0.2, 0.1}, 0.33, []int{1, 2}},
		{"NaN ties by index", []float64{math.NaN(), math.Inf(-1), 0.1}, 0.33, []int{0, 2}},
		{"inf", []float64{0.1, math.Inf(1), 0.3}, 0.5, []int{1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := layerselect.TopLazy(tc.ratios, tc.keep)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			o, err := layerselect.NewOnline(len(tc.ratios), tc.keep)
			require.NoError(t, err)
			for l, r := range tc.ratios {
				o.Observe(l, r)
			}
			require.Equal(t, tc.want, o.Lazy())
		})
	}
}

// checkOnline observes layers in the given order and checks, at every step,
// the peak bound (at most K+1 observed-but-full layers before popping, at most
// K after), that each popped layer is the laziest of those still full, and at
// the end that Lazy equals TopLazy.
func checkOnline(t testing.TB, ratios []float64, order []int, keep float64) {
	o, err := layerselect.NewOnline(len(ratios), keep)
	require.NoError(t, err)
	K := layerselect.KeepCount(len(ratios), keep)
	full := map[int]bool{}
	lazyCount := 0
	for _, l := range order {
		full[l] = true
		require.LessOrEqual(t, len(full), K+1, "peak bound")
		popped := o.Observe(l, ratios[l])
		for _, p := range popped {
			require.True(t, full[p], "popped layer %d not full", p)
			for q := range full { // p must be the laziest still full (ratio desc, index asc; NaN lowest)
				if q == p {
					continue
				}
				rp, rq := ratios[p], ratios[q]
				if math.IsNaN(rp) {
					rp = math.Inf(-1)
				}
				if math.IsNaN(rq) {
					rq = math.Inf(-1)
				}
				require.True(t, rp > rq || (rp == rq && p < q), "popped %d (%v) but %d (%v) is lazier", p, ratios[p], q, ratios[q])
			}
			delete(full, p)
			lazyCount++
		}
		require.LessOrEqual(t, len(full), K)
		require.Len(t, o.Lazy(), lazyCount)
	}
	want, err := layerselect.TopLazy(ratios, keep)
	require.NoError(t, err)
	require.Equal(t, want, o.Lazy())
	require.True(t, slices.IsSorted(o.Lazy()))
}

// TestOnlineMatchesTopLazy: random ratios (drawn from few values, so ties are
// common), random keep, in layer order and shuffled.
func TestOnlineMatchesTopLazy(t *testing.T) {
	rng := rand.New(rand.NewPCG(42, 42))
	for range 500 {
		L := 1 + rng.IntN(40)
		ratios := make([]float64, L)
		levels := 1 + rng.IntN(6)
		for i := range ratios {
			ratios[i] = float64(rng.IntN(levels)) / float64(levels)
		}
		keep := []float64{0.5, 0.25, 1, 0.1, 0.75, rng.Float64()*0.99 + 0.01}[rng.IntN(6)]
		order := make([]int, L)
		for i := range order {
			order[i] = i
		}
		checkOnline(t, ratios, order, keep)
		rng.Shuffle(L, func(i, j int) { order[i], order[j] = order[j], order[i] })
		checkOnline(t, ratios, order, keep)
	}
}

func TestOnlinePanics(t *testing.T) {
	o, err := layerselect.NewOnline(3, 0.5)
	require.NoError(t, err)
	o.Observe(1, 0.5)
	require.PanicsWithValue(t, "layerselect: Observe: layer 1 observed twice", func() { o.Observe(1, 0.4) })
	require.Panics(t, func() { o.Observe(3, 0.4) })
	require.Panics(t, func() { o.Observe(-1, 0.4) })
	require.Equal(t, []int{}, o.Lazy())
}

func TestValidateLayers(t *testing.T) {
	tests := []struct {
		lazy   []int
		layers int
		msg    string
	}{
		{nil, 4, ""},
		{[]int{3, 0, 2}, 4, ""},
		{[]int{0, 4}, 4, "layerselect: lazy layer 4: out of range [0,4)"},
		{[]int{-1}, 4, "layerselect: lazy layer -1: out of range"},
		{[]int{1, 2, 1}, 4, "layerselect: lazy layer 1: listed twice"},
	}
	for _, tc := range tests {
		err := layerselect.ValidateLayers(tc.lazy, tc.layers)
		if tc.msg == "" {
			require.NoError(t, err)
			continue
		}
		require.ErrorIs(t, err, layerselect.ErrInvalid)
		require.Contains(t, err.Error(), tc.msg)
	}
}

// FuzzOnline: ratios and observation order from fuzz bytes; Online must match
// TopLazy and keep the peak bound.
func FuzzOnline(f *testing.F) {
	f.Add([]byte{5, 72, 83, 65, 80, 53}, uint8(60), uint64(1))
	f.Add([]byte{1, 1, 1, 1, 1, 1, 1, 1}, uint8(50), uint64(2))
	f.Add([]byte{0}, uint8(100), uint64(3))
	f.Add([]byte{9, 9, 3, 3, 7, 7, 0, 255, 128}, uint8(1), uint64(4))
	f.Fuzz(func(t *testing.T, data []byte, keepPct uint8, seed uint64) {
		if len(data) == 0 || len(data) > 200 {
			return
		}
		ratios := make([]float64, len(data))
		for i, b := range data {
			ratios[i] = float64(b%16) / 15 // few levels: many ties
			if b == 255 {
				ratios[i] = math.NaN()
			}
		}
		keep := float64(1+int(keepPct)%100) / 100
		order := rand.New(rand.NewPCG(seed, 0)).Perm(len(data))
		checkOnline(t, ratios, order, keep)
	})
}
