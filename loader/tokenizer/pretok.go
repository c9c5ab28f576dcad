package tokenizer

import (
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// preTokenizer splits pieces into smaller pieces (dropping empty ones) and may
// rewrite them.
type preTokenizer interface {
	split(in []piece) []piece
}

type splitBehavior uint8

const (
	behRemoved splitBehavior = iota
	behIsolated
	behMergedPrev
	behMergedNext
	behContiguous
)

// applyBehavior turns pattern spans into the kept ranges, as the Rust
// NormalizedString::split does.
func applyBehavior(sp []span, b splitBehavior) []span {
	switch b {
	case behRemoved:
		out := sp[:0]
		for _, s := range sp {
			if !s.match {
				out = append(out, s)
			}
		}
		return out
	case behIsolated:
		return sp
	case behContiguous:
		var out []span
		prev := false
		for _, s := range sp {
			if len(out) > 0 && s.match == prev {
				out[len(out)-1].end = s.end
			} else {
				out = append(out, span{s.start, s.end, false})
			}
			prev = s.match
		}
		return out
	case behMergedPrev:
		var out []span
		prev := false
		for _, s := range sp {
			if s.match && !prev && len(out) > 0 {
				out[len(out)-1].end = s.end
			} else {
				out = append(out, span{s.start, s.end, false})
			}
			prev = s.match
		}
		return out
	case behMergedNext:
		// Walk backwards: a match joins the piece after it.
		var rev []span
		prev := false
		for i := len(sp) - 1; i >= 0; i-- {
			s := sp[i]
			if s.match && !prev && len(rev) > 0 {
				rev[len(rev)-1].start = s.start
			} else {
				rev = append(rev, span{s.start, s.end, false})
			}
			prev = s.match
		}
		for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
			rev[i], rev[j] = rev[j], rev[i]
		}
		return rev
	}
	return sp
}

// splitWith splits every piece with pattern p and behavior b.
func splitWith(in []piece, p *pattern, b splitBehavior, invert bool) []piece {
	out := make([]piece, 0, len(in)*4)
	var sp []span
	for _, pc := range in {
		sp = p.find(sp[:0], pc.s)
		if invert {
			for i := range sp {
				sp[i].match = !sp[i].match
			}
		}
		for _, s := range applyBehavior(sp, b) {
			if s.end > s.start {
				out = append(out, piece{s: pc.s[s.start:s.end], id: -1, first: pc.first && s.start == 0})
			}
		}
	}
	return out
}

type splitPre struct {
	pat      *pattern
	behavior splitBehavior
	invert   bool
	fast     func([]piece) []piece // hand-written matcher for a known pattern, or nil
}

func (s *splitPre) split(in []piece) []piece {
	if s.fast != nil {
		return s.fast(in)
	}
	return splitWith(in, s.pat, s.behavior, s.invert)
}

// ---- ByteLevel ----

var (
	byteToRune [256]rune
	runeToByte map[rune]byte
	byteStr    [256]string
)

func init() {
	runeToByte = make(map[rune]byte, 256)
	n := rune(0)
	for b := 0; b < 256; b++ {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			byteToRune[b] = rune(b)
		} else {
			byteToRune[b] = 256 + n
			n++
		}
		runeToByte[byteToRune[b]] = byte(b)
		byteStr[b] = string(byteToRune[b])
	}
}

// byteLevelString maps every byte of s to its printable byte-level character.
func byteLevelString(s string) string {
	var b strings.Builder
	b.Grow(len(s) * 2)
	for i := 0; i < len(s); i++ {
		b.WriteString(byteStr[s[i]])
	}
	return b.String()
}

// gpt2Src is the GPT-2 pattern the ByteLevel pre-tokenizer uses when use_regex is true.
const gpt2Src = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`

var gpt2Once = sync.OnceValue(func() *pattern {
	re, err := compileRegex(gpt2Src)
	if err != nil {
		panic(err) // constant pattern
	}
	return &pattern{re: re}
})

func gpt2Pattern() *pattern { return gpt2Once() }

type byteLevelPre struct {
	addPrefixSpace, useRegex bool
	re                       *pattern
	raw                      bool // leave the byte mapping to the model (bpe.rawBytes)
}

func (b *byteLevelPre) split(in []piece) []piece {
	if b.addPrefixSpace {
		for i := range in {
			if !strings.HasPrefix(in[i].s, " ") {
				in[i].s = " " + in[i].s
			}
		}
	}
	if b.useRegex {
		in = splitWith(in, b.re, behIsolated, false)
	}
	if !b.raw {
		for i := range in {
			in[i].s = byteLevelString(in[i].s)
		}
	}
	return in
}

// ---- Metaspace ----

type metaspacePre struct{ metaspaceCfg }

func (m *metaspacePre) split(in []piece) []piece {
	out := make([]piece, 0, len(in)*4)
	for _, pc := range in {
		s := strings.ReplaceAll(pc.s, " ", m.replStr)
		switch m.scheme {
		case "always":
			if !strings.HasPrefix(s, m.replStr) {
				s = m.replStr + s
			}
		case "first":
			if !strings.HasPrefix(s, m.replStr) && pc.first {
				s = m.replStr + s
			}
		}
		if !m.splitOn {
			if s != "" {
				out = append(out, piece{s: s, id: -1, first: pc.first})
			}
			continue
		}
		// MergedWithNext on the replacement character.
		start := 0
		for i, r := range s {
			if r == m.repl && i > start {
				out = append(out, piece{s: s[start:i], id: -1, first: pc.first && start == 0})
				start = i
			}
		}
		if start < len(s) {
			out = append(out, piece{s: s[start:], id: -1, first: pc.first && start == 0})
		}
	}
	return out
}

// ---- Digits, WhitespaceSplit ----

type digitsPre struct{ individual bool }

func (d digitsPre) split(in []piece) []piece {
	out := make([]piece, 0, len(in)*2)
	var sp []span
	for _, pc := range in {
		sp = sp[:0]
		prev, i := 0, 0
		for i < len(pc.s) {
			r, n := utf8.DecodeRuneInString(pc.s[i:])
			if unicode.IsDigit(r) {
				if prev < i {
					sp = append(sp, span{prev, i, false})
				}
				sp = append(sp, span{i, i + n, true})
				prev = i + n
			}
			i += n
		}
		if prev < len(pc.s) {
			sp = append(sp, span{prev, len(pc.s), false})
		}
		beh := behIsolated
		if !d.individual {
			beh = behContiguous
		}
		for _, s := range applyBehavior(sp, beh) {
			if s.end > s.start {
				out = append(out, piece{s: pc.s[s.start:s.end], id: -1, first: pc.first && s.start == 0})
			}
		}
	}
	return out
}

type whitespaceSplitPre struct{}

func (whitespaceSplitPre) split(in []piece) []piece {
	out := make([]piece, 0, len(in)*2)
	for _, pc := range in {
		i := 0
		for i < len(pc.s) {
			r, n := utf8.DecodeRuneInString(pc.s[i:])
			if isWhiteSpace(r) {
				i += n
				continue
			}
			j := i
			for j < len(pc.s) {
				r, n := utf8.DecodeRuneInString(pc.s[j:])
				if isWhiteSpace(r) {
					break
				}
				j += n
			}
			out = append(out, piece{s: pc.s[i:j], id: -1, first: pc.first && i == 0})
			i = j
		}
	}
	return out
}
