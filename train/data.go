package train

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"

	"github.com/lighttransfer/lighttransfer-go/loader/tokenizer"
	"github.com/lighttransfer/lighttransfer-go/model"
)

// Example is one training text as token ids, BOS first; the first Prompt tokens are context
// only (their next-token predictions are not scored).
type Example struct {
	Tokens []int32
	Prompt int
}

// Record is one parsed JSONL line: exactly one of the three forms {"text"},
// {"prompt","completion"} or {"messages"} (rendered with the checkpoint's chat template,
// every message but the last assistant one being the prompt).
type Record struct {
	Text       string              `json:"text"`
	Prompt     string              `json:"prompt"`
	Completion string              `json:"completion"`
	Messages   []tokenizer.Message `json:"messages"`
	raw        map[string]json.RawMessage
}

// ParseJSONL reads one JSON object per line from r (blank lines are errors, so are unknown
// forms); name labels errors, which wrap ErrData and give the 1-based line number.
func ParseJSONL(r io.Reader, name string) ([]Record, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 64<<20)
	var out []Record
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			return nil, fmt.Errorf("%w: %s:%d: empty line", ErrData, name, line)
		}
		rec, err := parseRecord(b)
		if err != nil {
			return nil, fmt.Errorf("%w: %s:%d: %v", ErrData, name, line, err)
		}
		out = append(out, rec)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %s: line %d: %v", ErrData, name, line+1, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %s: no records", ErrData, name)
	}
	return out, nil
}

func parseRecord(b []byte) (Record, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return Record{}, fmt.Errorf("not a JSON object: %v", err)
	}
	var rec Record
	if err := json.Unmarshal(b, &rec); err != nil {
		return Record{}, fmt.Errorf("wrong field types: %v", err)
	}
	_, hasText := raw["text"]
	_, hasPrompt := raw["prompt"]
	_, hasCompletion := raw["completion"]
	_, hasMessages := raw["messages"]
	switch {
	case hasText && !hasPrompt && !hasCompletion && !hasMessages:
		if rec.Text == "" {
			return Record{}, fmt.Errorf(`"text" is empty`)
		}
	case hasPrompt && hasCompletion && !hasText && !hasMessages:
		if rec.Completion == "" {
			return Record{}, fmt.Errorf(`"completion" is empty`)
		}
	case hasMessages && !hasText && !hasPrompt && !hasCompletion:
		if len(rec.Messages) == 0 {
			return Record{}, fmt.Errorf(`"messages" is empty`)
		}
		for i, m := range rec.Messages {
			if m.Role == "" {
				return Record{}, fmt.Errorf("message %d has no role", i)
			}
		}
	default:
		return Record{}, fmt.Errorf(`want exactly one of {"text"}, {"prompt","completion"} or {"messages"}`)
	}
	rec.raw = raw
	return rec, nil
}

// Tokenize turns records into examples with tok: text gets BOS (when the tokenizer adds
// one); prompt+completion scores only the completion; messages use the chat template, the
// prompt being everything before the last message. name labels errors (with the record's
// 1-based index as its line).
func Tokenize(recs []Record, tok *tokenizer.Tokenizer, name string) ([]Example, error) {
	var out []Example
	for i, r := range recs {
		var prompt, full string
		var err error
		switch {
		case r.Messages != nil:
			if !tok.HasChatTemplate() {
				return nil, fmt.Errorf("%w: %s:%d: messages need a chat template, the tokenizer has none", ErrData, name, i+1)
			}
			if prompt, err = tok.ApplyChatTemplate(r.Messages[:len(r.Messages)-1], false); err == nil {
				full, err = tok.ApplyChatTemplate(r.Messages, false)
			}
			if len(r.Messages) == 1 {
				prompt = ""
			}
		case r.Completion != "":
			prompt, full = r.Prompt, r.Prompt+r.Completion
		default:
			full = r.Text
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %s:%d: %v", ErrData, name, i+1, err)
		}
		chat := r.Messages != nil
		ids, err := tok.Encode(full, !chat)
		if err != nil {
			return nil, fmt.Errorf("%w: %s:%d: %v", ErrData, name, i+1, err)
		}
		p := 0
		if prompt != "" {
			pids, err := tok.Encode(prompt, !chat)
			if err != nil {
				return nil, fmt.Errorf("%w: %s:%d: %v", ErrData, name, i+1, err)
			}
			p = len(pids)
		}
		if len(ids) < 2 || p >= len(ids) {
			return nil, fmt.Errorf("%w: %s:%d: nothing to train on (%d tokens, %d of them prompt)", ErrData, name, i+1, len(ids), p)
		}
		out = append(out, Example{Tokens: ids, Prompt: p})
	}
	return out, nil
}

// Sequence is one packed training row: T token ids and the target of each row (the next
// token, or -1 where the row is not scored).
type Sequence struct {
	Tokens  []int32
	Targets []int32
}

// Pack concatenates examples into sequences of exactly T tokens (the last one padded with
// unscored rows); an example longer than T is an error wrapping ErrData (name labels it,
// with the example's 1-based index).
func Pack(exs []Example, T int, name string) ([]Sequence, error) {
	var out []Sequence
	cur := Sequence{}
	flush := func() {
		if len(cur.Tokens) == 0 {
			return
		}
		for len(cur.Tokens) < T {
			cur.Tokens = append(cur.Tokens, 0)
			cur.Targets = append(cur.Targets, -1)
		}
		out = append(out, cur)
		cur = Sequence{}
	}
	for i, e := range exs {
		if len(e.Tokens) > T {
			return nil, fmt.Errorf("%w: %s:%d: %d tokens, longer than the sequence length %d", ErrData, name, i+1, len(e.Tokens), T)
		}
		if len(cur.Tokens)+len(e.Tokens) > T {
			flush()
		}
		for j, id := range e.Tokens {
			cur.Tokens = append(cur.Tokens, id)
			t := int32(-1)
			if j+1 < len(e.Tokens) && j+1 >= e.Prompt {
				t = e.Tokens[j+1]
			}
			cur.Targets = append(cur.Targets, t)
		}
	}
	flush()
	return out, nil
}

// SampleOptions configures Sample. The zero value of each field means its default.
type SampleOptions struct {
	N    int    // sequences; required
	T    int    // tokens per sequence, BOS included; required
	BOS  int32  // first token; default 1
	Seed uint64 // sequence i draws with seed Seed+i
	// Exclude drops sequences sharing a run of Exclude.N tokens with the texts it holds, so
	// evaluation texts never become training data.
	Exclude *NGrams
	// Repeat is the fraction of sequences (default 0) whose sampling restarts, after a first
	// sampled part of T/2 tokens, from a verbatim repeat of a span of that part (Span tokens
	// from a seeded random start), the model then continuing to T. The full-attention teacher
	// copies such spans; streaming layers cannot see that far back, so these sequences teach
	// the other layers the long-range copying the streaming ones lost.
	Repeat float64
	Span   int // tokens of a repeated span; default 24
	// Temperature of the sampler; default 1. Below 1 the stories are more coherent (names
	// and objects recur, so there is more to copy from far back).
	Temperature float64
	// Progress, when set, is called after each sequence with the number done.
	Progress func(done int)
}

// Sample draws opts.N sequences of opts.T tokens from m itself (full attention, temperature
// opts.Temperature, seeded), each row targeting the next token.
func Sample(ctx context.Context, m *model.Model, opts SampleOptions) ([]Sequence, error) {
	if opts.N <= 0 || opts.T < 2 || opts.T > m.Config().MaxPositions {
		return nil, fmt.Errorf("%w: sampling %d sequences of %d tokens (context %d)", ErrConfig, opts.N, opts.T, m.Config().MaxPositions)
	}
	if opts.Repeat < 0 || opts.Repeat > 1 {
		return nil, fmt.Errorf("%w: repeat fraction %v outside [0, 1]", ErrConfig, opts.Repeat)
	}
	if opts.BOS == 0 {
		opts.BOS = 1
	}
	if opts.Span <= 0 {
		opts.Span = 24
	}
	if opts.Temperature < 0 || math.IsNaN(opts.Temperature) || math.IsInf(opts.Temperature, 0) {
		return nil, fmt.Errorf("%w: sampling temperature %v", ErrConfig, opts.Temperature)
	}
	if opts.Temperature == 0 {
		opts.Temperature = 1
	}
	gen := func(prompt []int32, n int, seed uint64) ([]int32, error) {
		res, err := m.GenerateTokens(ctx, prompt, model.WithMaxTokens(n), model.WithIgnoreEOS(),
			model.WithSampling(model.Sampling{Temperature: opts.Temperature, Seed: seed}),
			model.WithSessionOptions(model.FullAttention()))
		if err != nil {
			return nil, fmt.Errorf("train: sampling: %w", err)
		}
		return append(prompt, res.Tokens...), nil
	}
	// Candidates are drawn in order (whether to repeat a span, and where from, come from one
	// seeded stream), generated a batch at a time on as many goroutines as the process has
	// CPUs, and kept in order, so the result does not depend on the number of CPUs.
	type cand struct {
		seed   uint64
		repeat bool
		from   int
		ids    []int32
		err    error
	}
	half := opts.T / 2
	one := func(c *cand) {
		if !c.repeat {
			c.ids, c.err = gen([]int32{opts.BOS}, opts.T-1, c.seed)
			return
		}
		ids, err := gen([]int32{opts.BOS}, half-1, c.seed)
		if err == nil && len(ids) != half {
			err = fmt.Errorf("train: sampling: %d tokens, want %d", len(ids), half)
		}
		if err != nil {
			c.err = err
			return
		}
		ids = append(ids, ids[c.from:c.from+opts.Span]...)
		c.ids, c.err = gen(ids, opts.T-len(ids), c.seed^0x9e3779b97f4a7c15)
	}
	workers := max(1, runtime.GOMAXPROCS(0))
	var out []Sequence
	r := rand.New(rand.NewPCG(opts.Seed, 0x5eed))
	for i := uint64(0); len(out) < opts.N; {
		batch := make([]cand, workers)
		for k := range batch {
			c := &batch[k]
			c.seed = opts.Seed + i + uint64(k)
			if r.Float64() < opts.Repeat && half > opts.Span+1 {
				c.repeat, c.from = true, 1+r.IntN(half-opts.Span)
			}
		}
		var wg sync.WaitGroup
		for k := range batch {
			wg.Add(1)
			go func() {
				defer wg.Done()
				one(&batch[k])
			}()
		}
		wg.Wait()
		for k := range batch {
			if len(out) == opts.N {
				break
			}
			if i > uint64(4*opts.N+16) {
				return nil, fmt.Errorf("%w: only %d of %d samples avoid the excluded texts", ErrData, len(out), opts.N)
			}
			i++
			c := &batch[k]
			if c.err != nil {
				return nil, c.err
			}
			if opts.Exclude.Overlaps(c.ids) {
				continue
			}
			s := Sequence{Tokens: c.ids, Targets: make([]int32, len(c.ids))}
			for j := range c.ids {
				s.Targets[j] = -1
				if j+1 < len(c.ids) {
					s.Targets[j] = c.ids[j+1]
				}
			}
			out = append(out, s)
			if opts.Progress != nil {
				opts.Progress(len(out))
			}
		}
	}
	return out, nil
}

// NGrams is a set of token runs of length N taken from texts that must stay out of training.
type NGrams struct {
	N   int
	set map[string]bool
}

// NewNGrams collects every run of n tokens of the given texts.
func NewNGrams(n int, texts ...[]int32) *NGrams {
	g := &NGrams{N: n, set: map[string]bool{}}
	for _, t := range texts {
		for i := 0; i+n <= len(t); i++ {
			g.set[key(t[i:i+n])] = true
		}
	}
	return g
}

func key(ids []int32) string {
	b := make([]byte, 0, 4*len(ids))
	for _, id := range ids {
		b = append(b, byte(id), byte(id>>8), byte(id>>16), byte(id>>24))
	}
	return string(b)
}

// Overlaps reports whether ids contains one of the set's runs (false for a nil set).
func (g *NGrams) Overlaps(ids []int32) bool {
	if g == nil {
		return false
	}
	for i := 0; i+g.N <= len(ids); i++ {
		if g.set[key(ids[i:i+g.N])] {
			return true
		}
	}
	return false
}

// shuffled returns a seeded permutation of [0, n).
func shuffled(n int, seed uint64, epoch int) []int {
	r := rand.New(rand.NewPCG(seed, uint64(epoch)))
	return r.Perm(n)
}
