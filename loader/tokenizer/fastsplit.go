package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// Hand-written matchers for the pre-tokenizer regexes of Qwen2/Qwen2.5/Qwen3
// and Llama 3, equivalent to running them with a backtracking engine
// (Oniguruma, regexp2) and checked against regexp2 in the tests and fuzzers.
const (
	qwen2Pattern  = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	llama3Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// fastSplitter returns the matcher for a known pattern, or nil.
func fastSplitter(src string) func([]piece) []piece {
	switch src {
	case qwen2Pattern:
		return func(in []piece) []piece { return splitPieces(in, 1) }
	case llama3Pattern:
		return func(in []piece) []piece { return splitPieces(in, 3) }
	}
	return nil
}

func splitPieces(in []piece, maxDigits int) []piece {
	out := make([]piece, 0, len(in)*8)
	for _, pc := range in {
		s := pc.s
		for i := 0; i < len(s); {
			n := matchLlama3(s, i, maxDigits)
			out = append(out, piece{s: s[i : i+n], id: -1, first: pc.first && i == 0})
			i += n
		}
	}
	return out
}

// character classes
const (
	clsOther  = iota // not letter, number or white space
	clsLetter        // \p{L}
	clsNumber        // \p{N}
	clsSpace         // \s other than \r \n
	clsNL            // \r or \n
)

var asciiCls [128]uint8

func init() {
	for c := 0; c < 128; c++ {
		asciiCls[c] = classify(rune(c))
	}
}

func classify(r rune) uint8 {
	switch {
	case r == '\r' || r == '\n':
		return clsNL
	case r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'):
		return clsLetter
	case r < 128 && r >= '0' && r <= '9':
		return clsNumber
	case unicode.IsLetter(r):
		return clsLetter
	case unicode.IsNumber(r):
		return clsNumber
	case isWhiteSpace(r):
		return clsSpace
	}
	return clsOther
}

// at returns the class and size of the character at s[i] (clsOther, 0 at the end).
func at(s string, i int) (uint8, int) {
	if i >= len(s) {
		return clsOther, 0
	}
	if c := s[i]; c < utf8.RuneSelf {
		return asciiCls[c], 1
	}
	r, n := utf8.DecodeRuneInString(s[i:])
	return classify(r), n
}

func isSpaceCls(c uint8) bool { return c == clsSpace || c == clsNL }

// foldEq reports whether r equals the ASCII letter a under simple case folding.
func foldEq(r rune, a rune) bool {
	if r == a || r == a-'a'+'A' {
		return true
	}
	return a == 's' && r == 0x17F // LATIN SMALL LETTER LONG S folds to s
}

// contraction returns the length of a (?i:'s|'t|'re|'ve|'m|'ll|'d) match at s[i] ('\” there), or 0.
func contraction(s string, i int) int {
	r1, n1 := utf8.DecodeRuneInString(s[i+1:])
	if n1 == 0 {
		return 0
	}
	switch {
	case foldEq(r1, 's'), foldEq(r1, 't'), foldEq(r1, 'm'), foldEq(r1, 'd'):
		return 1 + n1
	}
	r2, n2 := utf8.DecodeRuneInString(s[i+1+n1:])
	if n2 == 0 {
		return 0
	}
	switch {
	case foldEq(r1, 'r') && foldEq(r2, 'e'), foldEq(r1, 'v') && foldEq(r2, 'e'), foldEq(r1, 'l') && foldEq(r2, 'l'):
		return 1 + n1 + n2
	}
	return 0
}

// matchLlama3 returns the length (> 0) of the match starting at s[i].
func matchLlama3(s string, i, maxDigits int) int {
	c, n := at(s, i)
	// 1. contractions
	if s[i] == '\'' {
		if k := contraction(s, i); k > 0 {
			return k
		}
	}
	// 2. [^\r\n\p{L}\p{N}]?\p{L}+
	if c == clsLetter {
		return letters(s, i+n) - i
	}
	if c == clsOther || c == clsSpace {
		if c2, _ := at(s, i+n); c2 == clsLetter {
			return letters(s, i+n) - i
		}
	}
	// 3. \p{N}{1,maxDigits}
	if c == clsNumber {
		j := i + n
		for d := 1; d < maxDigits; d++ {
			c2, n2 := at(s, j)
			if c2 != clsNumber {
				break
			}
			j += n2
		}
		return j - i
	}
	// 4. ' ?[^\s\p{L}\p{N}]+[\r\n]*'
	if c == clsOther || (s[i] == ' ' && func() bool { c2, _ := at(s, i+1); return c2 == clsOther && i+1 < len(s) }()) {
		j := i
		if s[i] == ' ' {
			j++
		}
		for {
			c2, n2 := at(s, j)
			if n2 == 0 || c2 != clsOther {
				break
			}
			j += n2
		}
		for j < len(s) && (s[j] == '\r' || s[j] == '\n') {
			j++
		}
		return j - i
	}
	// c is white space: find the run [i, j) and its last \r or \n.
	j, lastNL := i, -1
	for {
		c2, n2 := at(s, j)
		if n2 == 0 || !isSpaceCls(c2) {
			break
		}
		if c2 == clsNL {
			lastNL = j
		}
		j += n2
	}
	// 5. \s*[\r\n]+
	if lastNL >= 0 {
		return lastNL + 1 - i
	}
	// 6. \s+(?!\S)
	if j == len(s) {
		return j - i
	}
	_, lastN := utf8.DecodeLastRuneInString(s[:j])
	if j-lastN > i {
		return j - lastN - i
	}
	// 7. \s+
	return j - i
}

// letters returns the end of the run of letters starting at s[j].
func letters(s string, j int) int {
	for {
		c, n := at(s, j)
		if n == 0 || c != clsLetter {
			return j
		}
		j += n
	}
}
