package layerselect_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/require"

	"github.com/lighttransfer/lighttransfer-go/layerselect"
)

func TestReadPlan(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want layerselect.Plan
		msg  string // error substring; "" = valid
	}{
		{"valid", `{"num_hidden_layers": 5, "lazy_layers": [3, 1], "streaming_sink": 4, "streaming_window": 32, "source": "x"}`,
			layerselect.Plan{Layers: 5, Lazy: []int{1, 3}, Sink: 4, Window: 32, Source: "x"}, ""},
		{"no lazy layers", `{"num_hidden_layers": 2, "streaming_sink": 0, "streaming_window": 1}`,
			layerselect.Plan{Layers: 2, Lazy: []int{}, Window: 1}, ""},
		{"unknown fields ignored", `{"num_hidden_layers": 2, "lazy_layers": [0], "streaming_window": 8, "ratios": [0.5, 0.7], "x": {}}`,
			layerselect.Plan{Layers: 2, Lazy: []int{0}, Window: 8}, ""},
		{"wrong type", `{"num_hidden_layers": "5", "streaming_window": 8}`, layerselect.Plan{}, "layerselect: plan: json: cannot unmarshal string"},
		{"float layer", `{"num_hidden_layers": 5, "lazy_layers": [1.5], "streaming_window": 8}`, layerselect.Plan{}, "layerselect: plan: json"},
		{"not an object", `[1,2]`, layerselect.Plan{}, "layerselect: plan: json"},
		{"empty", ``, layerselect.Plan{}, "layerselect: plan: EOF"},
		{"truncated", `{"num_hidden_layers": 5`, layerselect.Plan{}, "layerselect: plan:"},
		{"trailing", `{"num_hidden_layers": 2, "streaming_window": 8} {}`, layerselect.Plan{}, "layerselect: plan: trailing data"},
		{"no layers", `{"streaming_window": 8}`, layerselect.Plan{}, "layerselect: plan for 0 layers"},
		{"out of range", `{"num_hidden_layers": 4, "lazy_layers": [4], "streaming_window": 8}`, layerselect.Plan{}, "layerselect: plan: lazy layer 4: out of range [0,4)"},
		{"repeat", `{"num_hidden_layers": 4, "lazy_layers": [2, 2], "streaming_window": 8}`, layerselect.Plan{}, "layerselect: plan: lazy layer 2: listed twice"},
		{"negative sink", `{"num_hidden_layers": 4, "streaming_sink": -1, "streaming_window": 8}`, layerselect.Plan{}, "layerselect: plan: streaming_sink -1"},
		{"zero window", `{"num_hidden_layers": 4, "streaming_sink": 1}`, layerselect.Plan{}, "layerselect: plan: streaming_window 0: must be > 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := layerselect.ReadPlan(strings.NewReader(tc.in))
			if tc.msg != "" {
				require.Error(t, err)
				require.ErrorIs(t, err, layerselect.ErrInvalid)
				require.Contains(t, err.Error(), tc.msg)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, p)
		})
	}
	_, err := layerselect.ReadPlan(iotest.ErrReader(errors.New("boom")))
	require.ErrorIs(t, err, layerselect.ErrInvalid)
	require.Contains(t, err.Error(), "boom")
	_, err = layerselect.ReadPlan(strings.NewReader(`{"source": "` + strings.Repeat("a", 1<<20) + `"}`))
	require.ErrorContains(t, err, "larger than")
}

func TestPlanValidate(t *testing.T) {
	p := layerselect.Plan{Layers: 24, Lazy: []int{1}, Sink: 4, Window: 1020}
	require.NoError(t, p.Validate(24))
	err := p.Validate(32)
	require.ErrorIs(t, err, layerselect.ErrInvalid)
	require.EqualError(t, err, "layerselect: plan for 24 layers, model has 32")
}

func TestPlanRoundTrip(t *testing.T) {
	p := layerselect.Plan{Layers: 5, Lazy: []int{1, 3}, Sink: 4, Window: 32, Source: "design §1"}
	var buf bytes.Buffer
	n, err := p.WriteTo(&buf)
	require.NoError(t, err)
	require.Equal(t, int64(buf.Len()), n)
	require.Equal(t, `{
  "num_hidden_layers": 5,
  "lazy_layers": [
    1,
    3
  ],
  "streaming_sink": 4,
  "streaming_window": 32,
  "source": "design §1"
}
`, buf.String())
	q, err := layerselect.ReadPlan(&buf)
	require.NoError(t, err)
	require.Equal(t, p, q)

	buf.Reset()
	_, err = layerselect.Plan{Layers: 1, Window: 1}.WriteTo(&buf)
	require.NoError(t, err)
	require.Contains(t, buf.String(), `"lazy_layers": []`)
}

func TestCalibrate(t *testing.T) {
	tests := []struct {
		name string
		runs [][]float64
		keep float64
		want []int
	}{
		{"single run = TopLazy", [][]float64{{0.72, 0.83, 0.656, 0.809, 0.532}}, 0.6, []int{1, 3}},
		{"majority", [][]float64{
			{0.9, 0.8, 0.1, 0.2}, // lazy {0,1}
			{0.9, 0.1, 0.8, 0.2}, // lazy {0,2}
			{0.9, 0.8, 0.2, 0.1}, // lazy {0,1}
		}, 0.5, []int{0, 1}},
		// counts: 0→2, 1→1, 2→1, 3→0; tie 1 vs 2 broken by mean ratio
		// (layer 1: 0.45, layer 2: 0.475).
		{"tie by mean", [][]float64{
			{0.9, 0.8, 0.1, 0.2},  // lazy {0,1}
			{0.9, 0.1, 0.85, 0.2}, // lazy {0,2}
		}, 0.5, []int{0, 2}},
		// counts 1 each, equal means: lower index wins.
		{"tie by index", [][]float64{{0.9, 0.1}, {0.1, 0.9}}, 0.5, []int{0}},
		// all-ones runs (short prompts) contribute nothing; otherwise ties would
		// push layers 0 and 1 lazy.
		{"all-ones runs ignored", [][]float64{
			{1, 1, 1, 1}, {1, 1, 1, 1}, {1, 1, 1, 1},
			{0.2, 0.3, 0.9, 0.8},
		}, 0.5, []int{2, 3}},
		{"keep all", [][]float64{{0.2, 0.3}}, 1, []int{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := layerselect.Calibrate(tc.runs, tc.keep, 4, 32)
			require.NoError(t, err)
			require.Equal(t, tc.want, p.Lazy)
			require.Equal(t, len(tc.runs[0]), p.Layers)
			require.Equal(t, 4, p.Sink)
			require.Equal(t, 32, p.Window)
			require.NotEmpty(t, p.Source)
			require.NoError(t, p.Validate(p.Layers))
		})
	}
}

func TestCalibrateErrors(t *testing.T) {
	tests := []struct {
		name         string
		runs         [][]float64
		keep         float64
		sink, window int
		msg          string
	}{
		{"no runs", nil, 0.5, 4, 32, "layerselect: calibrate: no runs"},
		{"empty run", [][]float64{{}}, 0.5, 4, 32, "layerselect: calibrate: run 0 has no layers"},
		{"ragged", [][]float64{{0.1, 0.2}, {0.1, 0.2}, {0.3}}, 0.5, 4, 32, "layerselect: calibrate: run 2 has 1 layers, run 0 has 2"},
		{"keep 0", [][]float64{{0.1, 0.2}}, 0, 4, 32, "layerselect: keep 0"},
		{"keep > 1", [][]float64{{0.1, 0.2}}, 1.01, 4, 32, "layerselect: keep 1.01"},
		{"nan", [][]float64{{0.1, 0.2}, {0.3, 0.4}, {0.5, 0.6}, {0.1, 0.2}, {0.5, nan()}}, 0.5, 4, 32, "layerselect: calibrate: run 4 layer 1: ratio NaN"},
		{"uninformative", [][]float64{{1, 1}, {1, 1}}, 0.5, 4, 32, "layerselect: calibrate: none of 2 runs is informative"},
		{"bad sink", [][]float64{{0.1, 0.2}}, 0.5, -1, 32, "layerselect: plan: streaming_sink -1"},
		{"bad window", [][]float64{{0.1, 0.2}}, 0.5, 4, 0, "layerselect: plan: streaming_window 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := layerselect.Calibrate(tc.runs, tc.keep, tc.sink, tc.window)
			require.ErrorIs(t, err, layerselect.ErrInvalid)
			require.Contains(t, err.Error(), tc.msg)
		})
	}
}

func nan() float64 { var z float64; return z / z }

// FuzzReadPlan: ReadPlan never panics, and a plan it accepts survives a
// WriteTo/ReadPlan round trip unchanged.
func FuzzReadPlan(f *testing.F) {
	for _, s := range []string{
		`{"num_hidden_layers": 5, "lazy_layers": [1, 3], "streaming_sink": 4, "streaming_window": 32, "source": "x"}`,
		`{"num_hidden_layers": 2, "streaming_window": 1}`,
		`{"num_hidden_layers": 64, "lazy_layers": [5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,26,27,28,30,31,32,33,35,37,38,43,51], "streaming_sink": 129, "streaming_window": 1025}`,
		`{"num_hidden_layers": -3, "lazy_layers": [-1]}`,
		`{"lazy_layers": null, "num_hidden_layers": 1e3}`,
		`[]`, `null`, ``, `{"a":`, `{"num_hidden_layers": 9223372036854775807, "streaming_window": 1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := layerselect.ReadPlan(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, layerselect.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		var buf bytes.Buffer
		if _, err := p.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		q, err := layerselect.ReadPlan(&buf)
		if err != nil {
			t.Fatalf("round trip: %v\n%s", err, buf.String())
		}
		require.Equal(t, p, q)
	})
}
