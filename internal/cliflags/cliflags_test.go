package cliflags

import (
	"flag"
	"io"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"4GiB": 4 << 30, "512MiB": 512 << 20, "1.5KiB": 1536, "100": 100,
		"7B": 7, " 2 GiB ": 2 << 30, "1TiB": 1 << 40, "3MB": 3 << 20} {
		got, err := ParseBytes(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "GiB", "-1MiB", "x", "0", "0.1B", "NaN", "Inf", "1e30GiB"} {
		_, err := ParseBytes(in)
		require.Error(t, err, in)
	}
}

// FuzzParseBytes: any input either fails or gives a positive count, without panicking.
func FuzzParseBytes(f *testing.F) {
	for _, s := range []string{"4GiB", "1.5KiB", "-1", "1e400", "9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if v, err := ParseBytes(s); err == nil && v <= 0 {
			t.Fatalf("ParseBytes(%q) = %d", s, v)
		}
	})
}

// TestAttentionFlags: each mode's flags give the options NewSession needs; contradictions
// and bad KV types are errors.
func TestAttentionFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		n    int // session options, the KV type's included
		err  bool
	}{
		{nil, 1, false},
		{[]string{"-mode", "full"}, 2, false},
		{[]string{"-mode", "test", "-keep", "0.25", "-window", "8"}, 2, false},
		{[]string{"-lazy", "0,2"}, 2, false},
		{[]string{"-mode", "fixed"}, 0, true},
		{[]string{"-mode", "sideways"}, 0, true},
		{[]string{"-kv", "q3"}, 0, true},
		{[]string{"-lazy", "1,x"}, 0, true},
		{[]string{"-mode", "test", "-plan", "p.json"}, 0, true},
		{[]string{"-plan", "does-not-exist.json"}, 0, true},
	} {
		var a Attention
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		a.Register(fs)
		require.NoError(t, fs.Parse(tc.args))
		err := a.Visit(fs)
		var n int
		if err == nil {
			opts, e := a.SessionOptions()
			n, err = len(opts), e
		}
		if tc.err {
			require.Error(t, err, "%v", tc.args)
			continue
		}
		require.NoError(t, err, "%v", tc.args)
		require.Equal(t, tc.n, n, "%v", tc.args)
	}
}
