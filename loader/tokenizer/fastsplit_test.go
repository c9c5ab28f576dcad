package tokenizer

import (
	"math/rand"
	"strings"
	"testing"
	"unicode/utf8"
)

// regexSplit is the oracle: the pattern run by regexp2.
func regexSplit(tb testing.TB, src, s string) []string {
	re, err := compileRegex(src)
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, p := range splitWith([]piece{{s: s, id: -1}}, &pattern{re: re}, behIsolated, false) {
		out = append(out, p.s)
	}
	return out
}

func fastSplit(src, s string) []string {
	var out []string
	for _, p := range fastSplitter(src)([]piece{{s: s, id: -1}}) {
		out = append(out, p.s)
	}
	return out
}

func checkFastSplit(t *testing.T, s string) {
	t.Helper()
	for _, src := range []string{qwen2Pattern, llama3Pattern} {
		want := regexSplit(t, src, s)
		got := fastSplit(src, s)
		if strings.Join(want, "\x00") != strings.Join(got, "\x00") {
			t.Fatalf("pattern %.40q… on %q:\n got %q\nwant %q", src, s, got, want)
		}
	}
}

// TestFastSplitMatchesRegex compares the hand-written matchers with regexp2
// on the Qwen2.5 case texts and on random strings over a small tricky alphabet
// (seeded; the alphabet covers every character class of the pattern).
func TestFastSplitMatchesRegex(t *testing.T) {
	fixed := []string{"", " ", "  ", "a", "'s", "'S", "'ſ", "'re'RE'Ll'x", "don't", "12345 678", "  \n\n  x",
		" \t\r\n y", "a  b", "x\u00a0\u00a0y", "é combining", "!!!\r\n\r\n", " ?!x", "\u3000\u3000a", "٣٤٥ⅫⅫ"}
	for _, s := range fixed {
		checkFastSplit(t, s)
	}
	if _, err := loadCasesQuiet(); err == nil {
		for _, c := range qwenCaseTexts {
			checkFastSplit(t, c)
		}
	}
	alphabet := []rune("aZé中'sStTrReEvVmMlLdDſ 0١Ⅻ¾\t\r\n\u00a0\u2028\u3000.,!?-_()😀\u0301")
	rng := rand.New(rand.NewSource(1))
	for range 20000 {
		n := rng.Intn(12)
		var b strings.Builder
		for range n {
			b.WriteRune(alphabet[rng.Intn(len(alphabet))])
		}
		checkFastSplit(t, b.String())
	}
}

var qwenCaseTexts []string

// loadCasesQuiet loads the Qwen2.5 case texts from testdata (without failing).
func loadCasesQuiet() ([]string, error) {
	if qwenCaseTexts != nil {
		return qwenCaseTexts, nil
	}
	cs, err := readCasesFile(testdataDir + "/tokenizers/qwen2.5/cases.json")
	if err != nil {
		return nil, err
	}
	for _, c := range cs {
		qwenCaseTexts = append(qwenCaseTexts, c.Text)
	}
	return qwenCaseTexts, nil
}

// FuzzFastSplit checks the hand-written matchers against regexp2 on any valid UTF-8.
func FuzzFastSplit(f *testing.F) {
	for _, s := range []string{"Hello world", "don't 'RE", "  \n\t x", "123456", "😀!! ?", "a\u00a0 b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		checkFastSplit(t, s)
	})
}
