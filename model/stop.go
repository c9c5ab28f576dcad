package model

import "strings"

// stopHolder releases generated text while holding back any tail that could still grow into
// one of the stop strings. Text given to it must be whole UTF-8 characters; what it releases
// then is too, since a held-back tail starts where a (valid UTF-8) stop string starts.
type stopHolder struct {
	stops   []string
	pending string
}

// push adds text and returns what can be released. When a stop string appears, stopped is
// true, out is the text before it and everything after is dropped.
func (h *stopHolder) push(text string) (out string, stopped bool) {
	h.pending += text
	first := -1
	for _, s := range h.stops {
		if i := strings.Index(h.pending, s); i >= 0 && (first < 0 || i < first) {
			first = i
		}
	}
	if first >= 0 {
		out = h.pending[:first]
		h.pending = ""
		return out, true
	}
	hold := 0
	for _, s := range h.stops {
		for k := min(len(s)-1, len(h.pending)); k > hold; k-- {
			if strings.HasSuffix(h.pending, s[:k]) {
				hold = k
				break
			}
		}
	}
	out = h.pending[:len(h.pending)-hold]
	h.pending = h.pending[len(h.pending)-hold:]
	return out, false
}

// flush releases whatever is held back (generation ended without a stop string).
func (h *stopHolder) flush() string {
	out := h.pending
	h.pending = ""
	return out
}
