package tokenizer

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
	"golang.org/x/text/unicode/norm"
)

// normalizer transforms one piece of text (valid UTF-8 in, valid UTF-8 out).
type normalizer interface {
	normalize(s string) string
}

type unicodeNorm struct{ f norm.Form }

func newUnicodeNorm(typ string) unicodeNorm {
	switch typ {
	case "NFD":
		return unicodeNorm{norm.NFD}
	case "NFKC":
		return unicodeNorm{norm.NFKC}
	case "NFKD":
		return unicodeNorm{norm.NFKD}
	default:
		return unicodeNorm{norm.NFC}
	}
}

func (u unicodeNorm) normalize(s string) string {
	if u.f.IsNormalString(s) {
		return s
	}
	return u.f.String(s)
}

// lowercase follows Rust's char::to_lowercase (full mapping: 'İ' → "i̇").
type lowercase struct{}

func (lowercase) normalize(s string) string {
	if !strings.ContainsRune(s, 'İ') {
		return strings.ToLower(s)
	}
	var b strings.Builder
	for _, r := range s {
		if r == 'İ' {
			b.WriteString("i\u0307")
		} else {
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

// stripAccents removes combining marks (category Mn), as the Rust library does.
type stripAccents struct{}

func (stripAccents) normalize(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.Is(unicode.Mn, r) {
			return -1
		}
		return r
	}, s)
}

type stripNorm struct{ left, right bool }

func (n stripNorm) normalize(s string) string {
	if n.left {
		s = strings.TrimLeftFunc(s, isWhiteSpace)
	}
	if n.right {
		s = strings.TrimRightFunc(s, isWhiteSpace)
	}
	return s
}

// prependNorm prepends its text to non-empty pieces.
type prependNorm string

func (p prependNorm) normalize(s string) string {
	if s == "" {
		return s
	}
	return string(p) + s
}

type replaceNorm struct {
	pat     *pattern
	content string
}

func (r replaceNorm) normalize(s string) string { return r.pat.replaceAll(s, r.content) }

type seqNorm []normalizer

func (q seqNorm) normalize(s string) string {
	for _, n := range q {
		s = n.normalize(s)
	}
	return s
}

// isWhiteSpace is Unicode White_Space (Rust's char::is_whitespace and \s).
func isWhiteSpace(r rune) bool { return unicode.Is(unicode.White_Space, r) }

// isWordChar approximates Rust regex's Unicode \w: Alphabetic, marks,
// decimal numbers, connector punctuation and the joiners.
func isWordChar(r rune) bool {
	return unicode.IsLetter(r) || unicode.Is(unicode.M, r) || unicode.Is(unicode.Nd, r) ||
		unicode.Is(unicode.Nl, r) || unicode.Is(unicode.Pc, r) || r == 0x200C || r == 0x200D
}

// ---- patterns (string or regex) ----

// pattern is a literal string or a regular expression with look-around.
type pattern struct {
	lit string
	re  *regexp2.Regexp
}

// span is a byte range of a piece; match tells whether the pattern matched it.
type span struct {
	start, end int
	match      bool
}

func compilePattern(p patternJSON, where string) (*pattern, error) {
	switch {
	case p.String != nil:
		return &pattern{lit: *p.String}, nil
	case p.Regex != nil:
		re, err := compileRegex(*p.Regex)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: regex %q: %v", ErrFormat, where, *p.Regex, err)
		}
		return &pattern{re: re}, nil
	default:
		return nil, fmt.Errorf("%w: %s: pattern needs String or Regex", ErrFormat, where)
	}
}

// compileRegex compiles an Oniguruma-style pattern with regexp2. Scoped
// case-insensitive groups made only of literal letters, such as Llama-3's
// (?i:'s|'t|...), are expanded into explicit character classes holding every
// simple case fold (so "'ſ" matches like in Oniguruma, which regexp2's
// lower-casing would miss).
func compileRegex(src string) (*regexp2.Regexp, error) {
	return regexp2.Compile(expandCaseFold(src), regexp2.None)
}

func expandCaseFold(src string) string {
	var out strings.Builder
	for {
		i := strings.Index(src, "(?i:")
		if i < 0 {
			out.WriteString(src)
			return out.String()
		}
		// Find the end of the group; give up on anything but literals, '|' and plain groups.
		depth, j, ok := 1, i+4, true
		for ; j < len(src) && depth > 0; j++ {
			switch c := src[j]; {
			case c == '(':
				if j+2 < len(src) && src[j+1] == '?' && src[j+2] == ':' {
					depth++
					j += 2
				} else {
					ok = false
				}
			case c == ')':
				depth--
			case c == '\\' || c == '[' || c == '.' || c == '*' || c == '+' || c == '?' || c == '{' || c == '^' || c == '$':
				ok = false
			}
			if !ok {
				break
			}
		}
		if !ok || depth != 0 {
			// Leave the rest to regexp2's own case-insensitive matching.
			out.WriteString(src)
			return out.String()
		}
		out.WriteString(src[:i])
		out.WriteString("(?:")
		body := src[i+4 : j]
		for _, r := range body {
			if !unicode.IsLetter(r) {
				out.WriteRune(r)
				continue
			}
			out.WriteByte('[')
			out.WriteRune(r)
			for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
				out.WriteRune(f)
			}
			out.WriteByte(']')
		}
		src = src[j:]
	}
}

// find returns the spans of s, matches and the gaps between them, covering s
// exactly like the Rust library's Pattern::find_matches.
func (p *pattern) find(dst []span, s string) []span {
	if s == "" {
		return append(dst, span{0, 0, false})
	}
	if p.re == nil {
		if p.lit == "" {
			return append(dst, span{0, len(s), false})
		}
		prev := 0
		for {
			k := strings.Index(s[prev:], p.lit)
			if k < 0 {
				break
			}
			k += prev
			if k > prev {
				dst = append(dst, span{prev, k, false})
			}
			dst = append(dst, span{k, k + len(p.lit), true})
			prev = k + len(p.lit)
		}
		if prev < len(s) {
			dst = append(dst, span{prev, len(s), false})
		}
		return dst
	}
	runes := []rune(s)
	offs := make([]int, len(runes)+1)
	o := 0
	for i, r := range runes {
		offs[i] = o
		o += utf8.RuneLen(r)
	}
	offs[len(runes)] = o
	prev := 0
	m, err := p.re.FindRunesMatch(runes)
	for err == nil && m != nil {
		st, en := offs[m.Index], offs[m.Index+m.Length]
		if st > prev {
			dst = append(dst, span{prev, st, false})
		}
		dst = append(dst, span{st, en, true})
		prev = en
		m, err = p.re.FindNextMatch(m)
	}
	if prev < len(s) {
		dst = append(dst, span{prev, len(s), false})
	}
	return dst
}

// replaceAll replaces every match of p in s with content.
func (p *pattern) replaceAll(s, content string) string {
	if p.re == nil {
		if p.lit == "" {
			return s
		}
		return strings.ReplaceAll(s, p.lit, content)
	}
	var b strings.Builder
	for _, sp := range p.find(nil, s) {
		if sp.match {
			b.WriteString(content)
		} else {
			b.WriteString(s[sp.start:sp.end])
		}
	}
	return b.String()
}
