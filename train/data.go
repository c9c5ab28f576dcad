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
	// Teacher, when non-nil, holds the full-attention model's next-token probabilities of
	// every row ([len(Tokens)][V]; Sample fills it with SampleOptions.Teacher), which
	// distillation then uses instead of running the teacher.
	Teacher []float32
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
	// Teacher makes every sequence carry the sampling model's next-token probabilities
	// (temperature 1) of each of its rows (Sequence.Teacher, 4·T·V bytes each; the last row,
	// which predicts nothing, is zero): the distributions distillation needs, computed as a
	// by-product of sampling.
	Teacher bool
	// Threads is the number of goroutines decoding groups of sequences; default
	// runtime.GOMAXPROCS. The samples do not depend on it.
	Threads int
	// Progress, when set, is called after each sequence with the number done.
	Progress func(done int)
}

// sampleGroup is the number of sequences Sample decodes in lockstep (one matrix product per
// projection over the group). Larger groups make fewer, larger products but their key/value
// caches fall out of the CPU's caches: on stories260K 8 gave about 25000 tokens per
// CPU-second, 16 about 22000, 32 16000, 64 16000 (BenchmarkSample, on a shared machine).
const sampleGroup = 8

// candidate is one sequence Sample generates: its seed, whether (and from where) it repeats
// a span, and its tokens.
type candidate struct {
	seed   uint64
	repeat bool
	from   int
	ids    []int32
	probs  []float32 // with SampleOptions.Teacher: [T][V]
}

// Sample draws opts.N sequences of opts.T tokens from the checkpoint w itself (full
// attention, temperature opts.Temperature, seeded), each row targeting the next token.
//
// Candidates are drawn in order (whether to repeat a span, and where from, come from one
// seeded stream) and decoded in groups of up to sampleGroup (8) in lockstep, each sequence with its own
// random stream (seeded by its seed, a second one after a repeated span), the groups spread
// over opts.Threads goroutines; a group's contents depend only on the options, so the
// samples do not depend on the number of threads.
func Sample(ctx context.Context, w *Weights, opts SampleOptions) ([]Sequence, error) {
	cfg := w.Config
	if opts.N <= 0 || opts.T < 2 || opts.T > cfg.MaxPositions {
		return nil, fmt.Errorf("%w: sampling %d sequences of %d tokens (context %d)", ErrConfig, opts.N, opts.T, cfg.MaxPositions)
	}
	if opts.Repeat < 0 || opts.Repeat > 1 {
		return nil, fmt.Errorf("%w: repeat fraction %v outside [0, 1]", ErrConfig, opts.Repeat)
	}
	if opts.BOS == 0 {
		opts.BOS = 1
	}
	if opts.BOS < 0 || int(opts.BOS) >= cfg.VocabSize {
		return nil, fmt.Errorf("%w: BOS %d outside the vocabulary of %d", ErrConfig, opts.BOS, cfg.VocabSize)
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
	workers := opts.Threads
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	dw := newDecWeights(w, opts.T)
	decs := make([]*decoder, workers)
	half := opts.T / 2
	var out []Sequence
	r := rand.New(rand.NewPCG(opts.Seed, 0x5eed))
	for next := uint64(0); len(out) < opts.N; {
		if next > uint64(4*opts.N+16) {
			return nil, fmt.Errorf("%w: only %d of %d samples avoid the excluded texts", ErrData, len(out), opts.N)
		}
		cands := make([]candidate, opts.N-len(out))
		for k := range cands {
			c := &cands[k]
			c.seed = opts.Seed + next + uint64(k)
			if r.Float64() < opts.Repeat && half > opts.Span+1 {
				c.repeat, c.from = true, 1+r.IntN(half-opts.Span)
			}
		}
		next += uint64(len(cands))
		groups := (len(cands) + sampleGroup - 1) / sampleGroup
		for wave := 0; wave < groups; wave += workers { // one group per goroutine at a time
			errs := make([]error, workers)
			var wg sync.WaitGroup
			for j := range min(workers, groups-wave) {
				wg.Add(1)
				go func() {
					defer wg.Done()
					cs := cands[(wave+j)*sampleGroup : min((wave+j+1)*sampleGroup, len(cands))]
					if decs[j] == nil || decs[j].capG < len(cs) {
						decs[j] = newDecoder(dw, min(sampleGroup, len(cands)), opts.T)
					}
					errs[j] = decs[j].generate(ctx, cs, opts)
				}()
			}
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					return nil, err
				}
			}
			for k := wave * sampleGroup; k < min((wave+workers)*sampleGroup, len(cands)); k++ {
				c := &cands[k]
				if opts.Exclude.Overlaps(c.ids) {
					continue
				}
				s := Sequence{Tokens: c.ids, Targets: make([]int32, len(c.ids)), Teacher: c.probs}
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
	}
	return out, nil
}

const golden = 0x9e3779b97f4a7c15

// newStream returns the random stream of seed (the one the model's sampler uses for it).
func newStream(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed^golden)) }

// generate decodes the candidates cs (at most the decoder's capacity) in lockstep: BOS, then
// tokens drawn from each one's stream, or, for a repeating one, the first T/2 drawn, the span
// copied, the rest drawn from a second stream.
func (d *decoder) generate(ctx context.Context, cs []candidate, opts SampleOptions) error {
	d.G = len(cs)
	T, half, V := opts.T, opts.T/2, d.w.cfg.VocabSize
	rngs := make([]*rand.Rand, len(cs))
	for g := range cs {
		cs[g].ids = make([]int32, T)
		cs[g].ids[0] = opts.BOS
		if opts.Teacher {
			cs[g].probs = make([]float32, T*V)
		}
		rngs[g] = newStream(cs[g].seed)
	}
	ids := make([]int32, len(cs))
	p := make([]float32, V)
	for t := 0; t+1 < T; t++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("train: sampling: %w", err)
		}
		for g := range cs {
			ids[g] = cs[g].ids[t]
		}
		d.step(ids, t)
		n := t + 1
		for g := range cs {
			c := &cs[g]
			if c.probs != nil {
				softmaxRow(c.probs[t*V:(t+1)*V], d.logits[g*V:(g+1)*V])
			}
			if c.repeat && n >= half && n < half+opts.Span {
				c.ids[n] = c.ids[c.from+n-half]
				continue
			}
			if c.repeat && n == half+opts.Span {
				rngs[g] = newStream(c.seed ^ golden)
			}
			c.ids[n] = drawToken(rngs[g], d.logits[g*V:(g+1)*V], p, opts.Temperature)
		}
	}
	return nil
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
