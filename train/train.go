package train

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/lighttransfer/lighttransfer-go/model"
)

// Loss selects the training objective.
type Loss int

const (
	// Distill (the default) minimises KL(full‖fixed): the full-attention teacher's next-token
	// distribution against the model under the training mask, on every target row.
	Distill Loss = iota
	// CrossEntropy is plain next-token cross-entropy on the target rows (SFT).
	CrossEntropy
)

// String returns "distill" or "ce".
func (l Loss) String() string {
	if l == CrossEntropy {
		return "ce"
	}
	return "distill"
}

// Params selects the parameters training updates; the others keep their values.
type Params int

const (
	// AllParams (the default) trains every tensor: embedding, every layer, final norm, head.
	AllParams Params = iota
	// LayerParams trains the decoder layers' tensors only (embedding, final norm and head
	// frozen, so a tied embedding does not move the full-attention layers' inputs).
	LayerParams
	// LazyParams trains only the streaming (lazy) layers' tensors.
	LazyParams
)

// String returns "all", "layers" or "lazy".
func (p Params) String() string {
	switch p {
	case LayerParams:
		return "layers"
	case LazyParams:
		return "lazy"
	}
	return "all"
}

// ParseParams parses "all", "layers" or "lazy"; other strings give an error wrapping ErrConfig.
func ParseParams(s string) (Params, error) {
	for _, p := range []Params{AllParams, LayerParams, LazyParams} {
		if s == p.String() {
			return p, nil
		}
	}
	return 0, fmt.Errorf("%w: parameter set %q: want all, layers or lazy", ErrConfig, s)
}

// frozen reports, per tensor of w, whether p leaves it unchanged under mask m (nil: none).
func (p Params) frozen(w *Weights, m Mask) []bool {
	if p == AllParams {
		return nil
	}
	f := make([]bool, len(w.Params))
	for i, q := range w.Params {
		f[i] = true
		for l := range w.Config.NumLayers {
			if p == LazyParams && !m.lazy(l) {
				continue
			}
			if strings.HasPrefix(q.Name, "model.layers."+strconv.Itoa(l)+".") {
				f[i] = false
			}
		}
	}
	return f
}

// Options configures Run. The zero value of each field means its default.
type Options struct {
	Mask       Mask
	Loss       Loss
	Params     Params  // which tensors are trained; default AllParams
	Batch      int     // sequences per micro-batch; default 8
	Accum      int     // micro-batches per optimizer step (gradient accumulation); default 1
	Steps      int     // optimizer steps; default 200
	AdamW      AdamW   // LR default 5e-4; others as torch.optim.AdamW
	Warmup     int     // linear warmup steps; default Steps/20
	MinLRRatio float64 // cosine floor as a fraction of the peak; default 0.1
	ClipNorm   float64 // global gradient-norm clipping; default 1; negative: none
	Seed       uint64  // data order
	EvalEvery  int     // steps between validation passes; default 20
	Patience   int     // validation passes without improvement before stopping; default 3; negative: never stop early
	// SaveEvery, when > 0, calls Save with the current state every SaveEvery steps.
	SaveEvery int
	Save      func(st *State) error
	// Resume, when non-nil, continues from a saved State.
	Resume *State
	// Progress, when non-nil, is called after every step.
	Progress func(Progress)
	// Watch lists texts whose fixed-mask NLL each validation pass reports (Progress.Watch),
	// for learning curves; they never influence training or early stopping.
	Watch []Text
	// TeacherCache is the most bytes Run keeps of the teacher's probabilities of the training
	// sequences (4·T·V per sequence), so each is computed once; default
	// DefaultTeacherCache; negative: none (computed at every use). The results are the same.
	TeacherCache int64
	// MaxTime, when > 0, stops training after that long (the best weights are kept).
	MaxTime time.Duration
	// EMA, when in (0, 1), keeps an exponential moving average of the weights (after every
	// step avg ← EMA·avg + (1−EMA)·w, starting from the initial weights, or the resumed ones);
	// validation, the watched texts, early stopping and the result then use the average.
	// 0: none.
	EMA float64
}

// DefaultTeacherCache is Options.TeacherCache's default: 1 GiB.
const DefaultTeacherCache = 1 << 30

// Text is a token sequence (BOS first) scored from token From on.
type Text struct {
	Name   string
	Tokens []int32
	From   int
}

func (o Options) filled() Options {
	if o.Batch <= 0 {
		o.Batch = 8
	}
	if o.Accum <= 0 {
		o.Accum = 1
	}
	if o.Steps <= 0 {
		o.Steps = 200
	}
	if o.AdamW.LR == 0 {
		o.AdamW.LR = 5e-4
	}
	if o.Warmup == 0 {
		o.Warmup = o.Steps / 20
	}
	if o.MinLRRatio == 0 {
		o.MinLRRatio = 0.1
	}
	if o.ClipNorm == 0 {
		o.ClipNorm = 1
	}
	if o.EvalEvery <= 0 {
		o.EvalEvery = 20
	}
	if o.Patience == 0 {
		o.Patience = 3
	}
	return o
}

// Progress reports one finished step.
type Progress struct {
	Step, Steps  int
	Loss         float64 // mean training loss of the step
	LR           float64
	GradNorm     float64 // before clipping
	TokensPerSec float64 // training tokens (all rows) per second so far
	ETA          time.Duration
	Val          float64   // validation NLL when this step ran a validation pass, else NaN
	Best         float64   // best validation NLL so far
	Watch        []float64 // with Val: the fixed-mask NLL of each Options.Watch text
}

// State is a resumable training state: the weights, the optimizer's moments, the number of
// steps completed and the best validation result.
type State struct {
	Weights  *Weights
	Best     *Weights // the weights of the best validation pass (nil: none yet)
	BestVal  float64
	Step     int
	Adam     [][]float32 // first moments, aligned with Weights.Params
	AdamV    [][]float32 // second moments
	AdamStep int
	Bad      int // validation passes since the best
}

// Result is what Run returns.
type Result struct {
	Weights    *Weights // the best weights by validation NLL (the last ones without validation data)
	Steps      int      // optimizer steps run
	BestStep   int      // step of the best validation pass
	BestVal    float64
	StartVal   float64   // validation NLL before training
	FullVal    float64   // validation NLL of the teacher (full attention); NaN without one
	StartWatch []float64 // Options.Watch NLLs before training
	Curve      []Progress
	Elapsed    time.Duration
}

// Run fine-tunes w in place under opts.Mask on the training sequences (all of length T),
// with teacher giving the full-attention distributions for distillation, validating on val
// (fixed-mask NLL) and keeping the best weights. A non-finite loss stops it with an error
// wrapping ErrNonFinite that names the step; the weights saved before then stay valid.
func Run(ctx context.Context, w *Weights, teacher *model.Model, trainSeqs, val []Sequence, opts Options) (*Result, error) {
	o := opts.filled()
	cfg := w.Config
	if err := o.Mask.Validate(cfg.NumLayers); err != nil {
		return nil, err
	}
	if len(trainSeqs) == 0 {
		return nil, fmt.Errorf("%w: no training sequences", ErrData)
	}
	T := len(trainSeqs[0].Tokens)
	if T > cfg.MaxPositions {
		return nil, fmt.Errorf("%w: sequence length %d exceeds the model's context of %d", ErrConfig, T, cfg.MaxPositions)
	}
	for i, s := range append(append([]Sequence(nil), trainSeqs...), val...) {
		if len(s.Tokens) != T || len(s.Targets) != T {
			return nil, fmt.Errorf("%w: sequence %d has %d tokens, want %d", ErrData, i, len(s.Tokens), T)
		}
		for _, id := range s.Tokens {
			if id < 0 || int(id) >= cfg.VocabSize {
				return nil, fmt.Errorf("%w: sequence %d: token %d outside the vocabulary of %d", ErrData, i, id, cfg.VocabSize)
			}
		}
	}
	if o.AdamW.LR < 0 || math.IsNaN(o.AdamW.LR) || math.IsInf(o.AdamW.LR, 0) {
		return nil, fmt.Errorf("%w: learning rate %v", ErrConfig, o.AdamW.LR)
	}
	if o.Loss == Distill && teacher == nil {
		return nil, fmt.Errorf("%w: distillation needs the full-attention teacher model", ErrConfig)
	}
	distill := o.Loss == Distill
	tn, err := newNet(w, o.Mask, o.Batch, T, distill, true)
	if err != nil {
		return nil, err
	}
	var ev *net
	if len(val) > 0 {
		if ev, err = newNet(w, o.Mask, o.Batch, T, false, false); err != nil {
			return nil, err
		}
	}
	watch := make([]*net, len(o.Watch))
	for i, t := range o.Watch {
		if t.From < 1 || t.From >= len(t.Tokens) || len(t.Tokens) > cfg.MaxPositions {
			return nil, fmt.Errorf("%w: watched text %q: %d tokens scored from %d", ErrConfig, t.Name, len(t.Tokens), t.From)
		}
		if watch[i], err = newNet(w, o.Mask, 1, len(t.Tokens), false, false); err != nil {
			return nil, err
		}
	}
	watchNLL := func() ([]float64, error) {
		var out []float64
		for i, t := range o.Watch {
			s := Sequence{Tokens: t.Tokens, Targets: make([]int32, len(t.Tokens))}
			for j := range s.Targets {
				s.Targets[j] = -1
				if j+1 >= t.From && j+1 < len(t.Tokens) {
					s.Targets[j] = t.Tokens[j+1]
				}
			}
			l, err := watch[i].run(makeBatch([]Sequence{s}, 0, 1, nil))
			if err != nil {
				return nil, err
			}
			out = append(out, l)
		}
		return out, nil
	}
	if o.EMA < 0 || o.EMA >= 1 || math.IsNaN(o.EMA) {
		return nil, fmt.Errorf("%w: EMA decay %v: want [0, 1)", ErrConfig, o.EMA)
	}
	adam := newAdamState(w)
	frozen := o.Params.frozen(w, o.Mask)
	st := &State{Weights: w, BestVal: math.Inf(1)}
	if r := o.Resume; r != nil {
		if err := restore(w, adam, r); err != nil {
			return nil, err
		}
		st.Step, st.BestVal, st.Best, st.Bad = r.Step, r.BestVal, r.Best, r.Bad
	}
	var avg, cur *Weights // the moving average, and where w's own values wait while it is evaluated
	if o.EMA > 0 {
		avg, cur = w.Clone(), w.Clone()
	}
	// evaluated returns the weights validation judges (the average with EMA) and runs f with
	// them in w, where the evaluation nets read them.
	evaluated := func(f func() error) (*Weights, error) {
		if avg == nil {
			return w, f()
		}
		for i, p := range w.Params {
			copy(cur.Params[i].Data, p.Data)
			copy(p.Data, avg.Params[i].Data)
		}
		err := f()
		for i, p := range w.Params {
			copy(p.Data, cur.Params[i].Data)
		}
		return avg, err
	}
	res := &Result{BestVal: math.Inf(1), StartVal: math.NaN(), FullVal: math.NaN()}
	if teacher != nil && len(val) > 0 {
		if res.FullVal, err = fullNLL(ctx, teacher, val); err != nil {
			return nil, err
		}
	}
	validate := func() (float64, error) {
		var sum float64
		var rows int
		for lo := 0; lo < len(val); lo += o.Batch {
			b := makeBatch(val, lo, o.Batch, nil)
			l, err := ev.run(b)
			if err != nil {
				return 0, err
			}
			k := scored(b.targets)
			sum += l * float64(k)
			rows += k
		}
		return sum / float64(max(rows, 1)), nil
	}
	if ev != nil && st.Step == 0 {
		v, err := validate()
		if err != nil {
			return nil, err
		}
		res.StartVal, st.BestVal = v, v
		st.Best = w.Clone()
		if res.StartWatch, err = watchNLL(); err != nil {
			return nil, err
		}
	}
	sched := Schedule{Peak: o.AdamW.LR, Warmup: o.Warmup, Total: o.Steps, MinRatio: o.MinLRRatio}
	grads := make([][]float32, len(w.Params))
	for i, p := range w.Params {
		grads[i] = make([]float32, len(p.Data))
	}
	per := len(trainSeqs) / o.Batch // micro-batches per epoch (the remainder is dropped)
	if per == 0 {
		return nil, fmt.Errorf("%w: %d training sequences are fewer than one batch of %d", ErrData, len(trainSeqs), o.Batch)
	}
	tcache := newTeacherCache(len(trainSeqs), T*cfg.VocabSize, o.TeacherCache)
	start := time.Now()
	tokens := 0
	startStep := st.Step
	for ; st.Step < o.Steps; st.Step++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		for i := range grads {
			clear(grads[i])
		}
		var loss float64
		for a := range o.Accum {
			mb := st.Step*o.Accum + a
			epoch, k := mb/per, mb%per
			perm := shuffled(len(trainSeqs), o.Seed, epoch)
			seqs := make([]Sequence, o.Batch)
			idx := perm[k*o.Batch : (k+1)*o.Batch]
			for j := range seqs {
				seqs[j] = trainSeqs[idx[j]]
			}
			var tp []float32
			if distill {
				if tp, err = tcache.probs(ctx, teacher, trainSeqs, idx); err != nil {
					return nil, err
				}
			}
			l, err := tn.run(makeBatch(seqs, 0, o.Batch, tp))
			if err != nil {
				return nil, err
			}
			loss += l / float64(o.Accum)
			for i := range grads {
				g := tn.grad(i)
				for j, x := range g {
					grads[i][j] += x / float32(o.Accum)
				}
			}
			tokens += o.Batch * T
		}
		for i := range grads {
			if frozen != nil && frozen[i] {
				clear(grads[i]) // frozen tensors count neither in the norm nor in the step
			}
		}
		norm := clip(grads, o.ClipNorm)
		if math.IsNaN(loss) || math.IsInf(loss, 0) || math.IsNaN(norm) || math.IsInf(norm, 0) {
			return nil, fmt.Errorf("%w at step %d (loss %v, gradient norm %v); the last saved checkpoint is kept", ErrNonFinite, st.Step+1, loss, norm)
		}
		lr := sched.At(st.Step)
		adamWStep(w, grads, adam, o.AdamW, lr, frozen)
		if avg != nil {
			d := float32(o.EMA)
			for i, p := range w.Params {
				a := avg.Params[i].Data
				for j, x := range p.Data {
					a[j] = d*a[j] + (1-d)*x
				}
			}
		}
		el := time.Since(start)
		done := st.Step + 1 - startStep
		p := Progress{Step: st.Step + 1, Steps: o.Steps, Loss: loss, LR: lr, GradNorm: norm,
			TokensPerSec: float64(tokens) / el.Seconds(), Val: math.NaN(),
			ETA: time.Duration(float64(el) / float64(done) * float64(o.Steps-st.Step-1))}
		stop := false
		if ev != nil && (p.Step%o.EvalEvery == 0 || p.Step == o.Steps) {
			var v float64
			judged, err := evaluated(func() error {
				var err error
				if v, err = validate(); err != nil {
					return err
				}
				p.Watch, err = watchNLL()
				return err
			})
			if err != nil {
				return nil, err
			}
			p.Val = v
			if v < st.BestVal {
				st.BestVal, st.Bad, res.BestStep = v, 0, p.Step
				st.Best = judged.Clone()
			} else {
				st.Bad++
				stop = o.Patience > 0 && st.Bad >= o.Patience
			}
		}
		p.Best = st.BestVal
		res.Curve = append(res.Curve, p)
		if o.Progress != nil {
			o.Progress(p)
		}
		if o.Save != nil && o.SaveEvery > 0 && p.Step%o.SaveEvery == 0 {
			saved := *st
			saved.Step = p.Step // steps completed
			saved.Adam, saved.AdamV, saved.AdamStep = adam.m, adam.v, adam.step
			if err := o.Save(&saved); err != nil {
				return nil, err
			}
		}
		if o.MaxTime > 0 && time.Since(start) > o.MaxTime {
			stop = true
		}
		if stop {
			st.Step++
			break
		}
	}
	res.Steps, res.Elapsed, res.BestVal = st.Step, time.Since(start), st.BestVal
	res.Weights = w
	if avg != nil {
		res.Weights = avg
	}
	if st.Best != nil {
		res.Weights = st.Best
	}
	return res, nil
}

func restore(w *Weights, adam *adamState, r *State) error {
	if r.Weights == nil || len(r.Weights.Params) != len(w.Params) || len(r.Adam) != len(w.Params) || len(r.AdamV) != len(w.Params) {
		return fmt.Errorf("%w: the saved state has a different set of parameters", ErrCheckpoint)
	}
	for i, p := range w.Params {
		q := r.Weights.Params[i]
		if q.Name != p.Name || len(q.Data) != len(p.Data) || len(r.Adam[i]) != len(p.Data) || len(r.AdamV[i]) != len(p.Data) {
			return fmt.Errorf("%w: parameter %q differs from the saved state", ErrCheckpoint, p.Name)
		}
		copy(p.Data, q.Data)
		copy(adam.m[i], r.Adam[i])
		copy(adam.v[i], r.AdamV[i])
	}
	adam.step = r.AdamStep
	return nil
}

func scored(t []float32) int {
	n := 0
	for _, x := range t {
		if x >= 0 {
			n++
		}
	}
	return n
}

// makeBatch lays out seqs[lo:lo+B] (missing ones as unscored padding) as a batch.
func makeBatch(seqs []Sequence, lo, B int, teacher []float32) *batch {
	T := len(seqs[0].Tokens)
	b := &batch{ids: make([]float32, B*T), targets: make([]float32, B*T), teacher: teacher}
	for j := range B {
		for i := range T {
			b.targets[j*T+i] = -1
		}
		if lo+j >= len(seqs) {
			continue
		}
		s := seqs[lo+j]
		for i := range T {
			b.ids[j*T+i] = float32(s.Tokens[i])
			b.targets[j*T+i] = float32(s.Targets[i])
		}
	}
	return b
}

// teacherCache keeps the teacher's probabilities of the training sequences after their
// first use (the teacher is fixed, so they never change), while they fit its byte budget.
type teacherCache struct {
	rows  [][]float32 // by training sequence; nil: not kept
	per   int         // floats per sequence
	left  int         // sequences that still fit
	batch []float32
}

func newTeacherCache(n, per int, budget int64) *teacherCache {
	if budget == 0 {
		budget = DefaultTeacherCache
	}
	fit := 0
	if budget > 0 {
		fit = int(min(budget/int64(4*per), int64(n)))
	}
	return &teacherCache{rows: make([][]float32, n), per: per, left: fit}
}

// probs returns the teacher's probabilities of seqs[idx[0]], seqs[idx[1]], … laid out as a
// batch ([len(idx)·T][V]), computing the ones not kept yet.
func (c *teacherCache) probs(ctx context.Context, m *model.Model, seqs []Sequence, idx []int) ([]float32, error) {
	if len(c.batch) != len(idx)*c.per {
		c.batch = make([]float32, len(idx)*c.per)
	}
	var miss []Sequence
	var at []int
	for j, i := range idx {
		if t := seqs[i].Teacher; t != nil {
			if len(t) != c.per {
				return nil, fmt.Errorf("%w: training sequence %d carries %d teacher probabilities, want %d", ErrData, i, len(t), c.per)
			}
			copy(c.batch[j*c.per:(j+1)*c.per], t)
			continue
		}
		if c.rows[i] != nil {
			copy(c.batch[j*c.per:(j+1)*c.per], c.rows[i])
			continue
		}
		miss, at = append(miss, seqs[i]), append(at, j)
	}
	if len(miss) > 0 {
		tp, err := teacherProbs(ctx, m, miss)
		if err != nil {
			return nil, err
		}
		for q, j := range at {
			row := tp[q*c.per : (q+1)*c.per]
			copy(c.batch[j*c.per:(j+1)*c.per], row)
			if c.left > 0 {
				c.rows[idx[j]] = append([]float32(nil), row...)
				c.left--
			}
		}
	}
	return c.batch, nil
}

// AttachTeacher sets the Teacher of each sequence of seqs that has none to the full-attention
// model m's next-token probabilities of its rows ([len(Tokens)][V], 4·len(Tokens)·V bytes
// each), so that distillation computes them once however often a sequence is trained on:
// copies of a Sequence share the slice. An error wraps the failing forward's.
func AttachTeacher(ctx context.Context, m *model.Model, seqs []Sequence) error {
	for i := range seqs {
		if seqs[i].Teacher != nil {
			continue
		}
		p, err := teacherProbs(ctx, m, seqs[i:i+1])
		if err != nil {
			return fmt.Errorf("%w (sequence %d)", err, i)
		}
		seqs[i].Teacher = p
	}
	return nil
}

// teacherProbs returns the full-attention model's next-token probabilities for every row of
// seqs, [len(seqs)·T][V].
func teacherProbs(ctx context.Context, m *model.Model, seqs []Sequence) ([]float32, error) {
	V := m.Config().VocabSize
	T := len(seqs[0].Tokens)
	out := make([]float32, len(seqs)*T*V)
	for j, s := range seqs {
		sess, err := m.NewSession(model.FullAttention())
		if err != nil {
			return nil, fmt.Errorf("train: teacher: %w", err)
		}
		lg, err := sess.Forward(ctx, s.Tokens)
		sess.Close()
		if err != nil {
			return nil, fmt.Errorf("train: teacher: %w", err)
		}
		softmaxRows(out[j*T*V:(j+1)*T*V], lg.Data().([]float32), V)
	}
	return out, nil
}

// fullNLL is the mean NLL of the scored rows of seqs under m with full attention.
func fullNLL(ctx context.Context, m *model.Model, seqs []Sequence) (float64, error) {
	V := m.Config().VocabSize
	var sum float64
	n := 0
	for _, s := range seqs {
		sess, err := m.NewSession(model.FullAttention())
		if err != nil {
			return 0, fmt.Errorf("train: teacher: %w", err)
		}
		lg, err := sess.Forward(ctx, s.Tokens)
		sess.Close()
		if err != nil {
			return 0, fmt.Errorf("train: teacher: %w", err)
		}
		x := lg.Data().([]float32)
		for r, t := range s.Targets {
			if t >= 0 {
				row := x[r*V : (r+1)*V]
				sum += logSumExp(row) - float64(row[t])
				n++
			}
		}
	}
	return sum / float64(max(n, 1)), nil
}

// softmaxRows writes softmax of each row of width V of x into dst.
func softmaxRows(dst, x []float32, V int) {
	for r := 0; r+V <= len(x); r += V {
		lse := logSumExp(x[r : r+V])
		for i, v := range x[r : r+V] {
			dst[r+i] = float32(math.Exp(float64(v) - lse))
		}
	}
}
