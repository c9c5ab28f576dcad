package train

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lighttransfer/lighttransfer-go/loader/tokenizer"
)

func TestParseJSONL(t *testing.T) {
	in := `{"text": "Once upon a time"}
{"prompt": "Q: ", "completion": "A."}
{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
`
	recs, err := ParseJSONL(strings.NewReader(in), "d.jsonl")
	require.NoError(t, err)
	require.Len(t, recs, 3)
	require.Equal(t, "Once upon a time", recs[0].Text)
	require.Equal(t, "A.", recs[1].Completion)
	require.Len(t, recs[2].Messages, 2)
}

// TestParseJSONLBadLines: every malformed line is an ErrData error naming file and line.
func TestParseJSONLBadLines(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "d.jsonl: no records"},
		{`{"text": "a"}` + "\n\n" + `{"text": "b"}`, "d.jsonl:2: empty line"},
		{`{"text": "a"}` + "\n" + `{"text": `, "d.jsonl:2: not a JSON object"},
		{`[1, 2]`, "d.jsonl:1: not a JSON object"},
		{`{"text": 3}`, "d.jsonl:1: wrong field types"},
		{`{"text": ""}`, `d.jsonl:1: "text" is empty`},
		{`{"prompt": "a"}`, "d.jsonl:1: want exactly one of"},
		{`{"text": "a", "prompt": "b", "completion": "c"}`, "d.jsonl:1: want exactly one of"},
		{`{"prompt": "a", "completion": ""}`, `d.jsonl:1: "completion" is empty`},
		{`{"messages": []}`, `d.jsonl:1: "messages" is empty`},
		{`{"messages": [{"content": "x"}]}`, "d.jsonl:1: message 0 has no role"},
		{`{"other": 1}`, "d.jsonl:1: want exactly one of"},
	} {
		_, err := ParseJSONL(strings.NewReader(tc.in), "d.jsonl")
		require.ErrorIs(t, err, ErrData, tc.in)
		require.ErrorContains(t, err, tc.want, tc.in)
	}
}

func FuzzParseJSONL(f *testing.F) {
	f.Add(`{"text": "Once upon a time"}`)
	f.Add(`{"prompt": "Q", "completion": "A"}` + "\n" + `{"text": "x"}`)
	f.Add(`{"messages": [{"role": "user", "content": "hi"}]}`)
	f.Add("{\"text\": \"a\"}\n\n")
	f.Add(`{"messages": [{"role": 1}]}`)
	f.Fuzz(func(t *testing.T, s string) {
		recs, err := ParseJSONL(strings.NewReader(s), "f.jsonl")
		if err != nil {
			if !errors.Is(err, ErrData) {
				t.Fatalf("error %v does not wrap ErrData", err)
			}
			return
		}
		for _, r := range recs {
			if r.Text == "" && r.Completion == "" && len(r.Messages) == 0 {
				t.Fatalf("accepted an empty record from %q", s)
			}
		}
	})
}

func loadTok(t *testing.T) *tokenizer.Tokenizer {
	tok, err := tokenizer.Load("../testdata/stories260K")
	require.NoError(t, err)
	return tok
}

func TestTokenizeAndPack(t *testing.T) {
	tok := loadTok(t)
	recs, err := ParseJSONL(strings.NewReader(`{"text": "Once upon a time there was a cat."}
{"prompt": "Tom saw a dog.", "completion": " The dog was big."}
`), "d.jsonl")
	require.NoError(t, err)
	exs, err := Tokenize(recs, tok, "d.jsonl")
	require.NoError(t, err)
	require.Len(t, exs, 2)
	require.Equal(t, int32(1), exs[0].Tokens[0], "BOS first")
	require.Zero(t, exs[0].Prompt)
	pids, err := tok.Encode("Tom saw a dog.", true)
	require.NoError(t, err)
	require.Equal(t, len(pids), exs[1].Prompt)

	T := len(exs[0].Tokens) + len(exs[1].Tokens) + 3
	seqs, err := Pack(exs, T, "d.jsonl")
	require.NoError(t, err)
	require.Len(t, seqs, 1)
	s := seqs[0]
	require.Len(t, s.Tokens, T)
	n0 := len(exs[0].Tokens)
	// Text: every row but the last predicts the next token of its own example.
	for j := 0; j < n0-1; j++ {
		require.Equal(t, exs[0].Tokens[j+1], s.Targets[j])
	}
	require.Equal(t, int32(-1), s.Targets[n0-1], "no prediction across examples")
	// Prompt rows are not scored, except the last one, which predicts the first completion token.
	p := exs[1].Prompt
	for j := 0; j < p-1; j++ {
		require.Equal(t, int32(-1), s.Targets[n0+j], "prompt row %d", j)
	}
	require.Equal(t, exs[1].Tokens[p], s.Targets[n0+p-1])
	for j := T - 3; j < T; j++ {
		require.Equal(t, int32(-1), s.Targets[j], "padding")
	}
	// Packing to a shorter length puts them in two sequences.
	seqs, err = Pack(exs, max(len(exs[0].Tokens), len(exs[1].Tokens)), "d.jsonl")
	require.NoError(t, err)
	require.Len(t, seqs, 2)
}

// TestPackTooLong: an example longer than the sequence length is an error naming its line.
func TestPackTooLong(t *testing.T) {
	_, err := Pack([]Example{{Tokens: []int32{1, 2}}, {Tokens: make([]int32, 9)}}, 8, "d.jsonl")
	require.ErrorIs(t, err, ErrData)
	require.ErrorContains(t, err, "d.jsonl:2: 9 tokens, longer than the sequence length 8")
}

func TestTokenizeMessagesWithoutTemplate(t *testing.T) {
	recs, err := ParseJSONL(strings.NewReader(`{"messages": [{"role": "user", "content": "hi"}]}`), "d.jsonl")
	require.NoError(t, err)
	_, err = Tokenize(recs, loadTok(t), "d.jsonl")
	require.ErrorIs(t, err, ErrData)
	require.ErrorContains(t, err, "d.jsonl:1: messages need a chat template")
}

func TestNGrams(t *testing.T) {
	g := NewNGrams(3, []int32{1, 2, 3, 4, 5})
	require.True(t, g.Overlaps([]int32{9, 2, 3, 4, 9}))
	require.False(t, g.Overlaps([]int32{1, 2, 9, 4, 5}))
	require.False(t, (*NGrams)(nil).Overlaps([]int32{1, 2, 3}))
}
