package model

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

func TestStopHolder(t *testing.T) {
	for _, tc := range []struct {
		stops  []string
		pieces []string
		want   string // all text released
		stop   bool
	}{
		{[]string{"END"}, []string{"ab", "cE", "N", "D", "xyz"}, "abc", true},
		{[]string{"END"}, []string{"ab", "cE", "N", "x"}, "abcENx", false},
		{[]string{"\n\n", "é!"}, []string{"caf", "é", "?", "é", "!"}, "café?", true},
		{nil, []string{"a", "b"}, "ab", false},
	} {
		h := stopHolder{stops: tc.stops}
		var got strings.Builder
		stopped := false
		for _, p := range tc.pieces {
			out, s := h.push(p)
			got.WriteString(out)
			if s {
				stopped = true
				break
			}
		}
		if !stopped {
			got.WriteString(h.flush())
		}
		require.Equal(t, tc.want, got.String())
		require.Equal(t, tc.stop, stopped)
	}
}

// FuzzStopHolder checks the holder's invariants on arbitrary text split into pieces at rune
// boundaries: released text is valid UTF-8 and a prefix of the input, contains no stop string,
// and is everything up to the first stop string (or all of it).
func FuzzStopHolder(f *testing.F) {
	f.Add("hello END world", "END", uint8(3))
	f.Add("ééé\n\nx", "\n\n", uint8(1))
	f.Add("abcabd", "abd", uint8(2))
	f.Fuzz(func(t *testing.T, text, stop string, step uint8) {
		if !utf8.ValidString(text) || !utf8.ValidString(stop) || stop == "" {
			return
		}
		n := int(step%7) + 1
		h := stopHolder{stops: []string{stop}}
		var got strings.Builder
		stopped := false
		runes := []rune(text)
		for i := 0; i < len(runes) && !stopped; i += n {
			out, s := h.push(string(runes[i:min(i+n, len(runes))]))
			if !utf8.ValidString(out) {
				t.Fatalf("released invalid UTF-8 %q", out)
			}
			got.WriteString(out)
			stopped = s
		}
		if !stopped {
			got.WriteString(h.flush())
		}
		want := text
		if i := strings.Index(text, stop); i >= 0 {
			want = text[:i]
			if !stopped {
				t.Fatalf("stop %q in %q not detected", stop, text)
			}
		}
		if got.String() != want {
			t.Fatalf("released %q, want %q", got.String(), want)
		}
	})
}
