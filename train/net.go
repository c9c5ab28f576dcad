package train

import (
	"fmt"
	"math"
	"strconv"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Mask is the attention of the model's layers during training: Lazy lists the layers under
// the streaming mask (query q sees keys k < Sink and q−Window < k ≤ q, on every row); the
// others are causal.
type Mask struct {
	Lazy   []int
	Sink   int
	Window int
}

// Validate checks m against a model of layers layers: every lazy layer in [0, layers) and
// listed once, Sink ≥ 0 and Window > 0 when any layer is lazy. Errors wrap ErrConfig.
func (m Mask) Validate(layers int) error {
	seen := map[int]bool{}
	for _, l := range m.Lazy {
		if l < 0 || l >= layers {
			return fmt.Errorf("%w: lazy layer %d out of range [0, %d)", ErrConfig, l, layers)
		}
		if seen[l] {
			return fmt.Errorf("%w: lazy layer %d listed twice", ErrConfig, l)
		}
		seen[l] = true
	}
	if len(m.Lazy) > 0 {
		if m.Window <= 0 {
			return fmt.Errorf("%w: window %d must be > 0", ErrConfig, m.Window)
		}
		if m.Sink < 0 {
			return fmt.Errorf("%w: sink %d must be >= 0", ErrConfig, m.Sink)
		}
	}
	return nil
}

func (m Mask) lazy(l int) bool {
	for _, x := range m.Lazy {
		if x == l {
			return true
		}
	}
	return false
}

// attnLoops makes new graphs use the per-key attention loops in causal layers too (for
// benchmarks comparing the two routes).
var attnLoops = false

// net is the training graph of a fixed batch shape: B sequences of T tokens through every
// layer, a loss node and, when built for training, the gradient of every parameter.
type net struct {
	B, T     int
	g        *G.ExprGraph
	params   []*G.Node // aligned with Weights.Params
	ids      *G.Node   // [B·T] token ids as float32
	targets  *G.Node   // [B·T] next-token ids, -1 where a row is not scored
	teacher  *G.Node   // [B·T][V] teacher probabilities (distillation only)
	loss     *G.Node
	grads    G.Nodes
	vm       G.VM
	lossVal  G.Value
	gradVals []G.Value
}

// newNet builds the graph over w's float32 slices (updates to them are seen by the next run).
// distill adds the teacher input and makes the loss KL(teacher‖model); grad adds the backward.
func newNet(w *Weights, mask Mask, B, T int, distill, grad bool) (*net, error) {
	cfg := w.Config
	n := &net{B: B, T: T, g: G.NewGraph()}
	g := n.g
	rows := B * T
	node := map[string]*G.Node{}
	for _, p := range w.Params {
		t := tensor.New(tensor.WithShape(p.Shape...), tensor.WithBacking(p.Data))
		var x *G.Node
		if len(p.Shape) == 1 {
			x = G.NewVector(g, tensor.Float32, G.WithShape(p.Shape...), G.WithName(p.Name), G.WithValue(t))
		} else {
			x = G.NewMatrix(g, tensor.Float32, G.WithShape(p.Shape...), G.WithName(p.Name), G.WithValue(t))
		}
		n.params = append(n.params, x)
		node[p.Name] = x
	}
	n.ids = G.NewVector(g, tensor.Float32, G.WithShape(rows), G.WithName("ids"),
		G.WithValue(tensor.New(tensor.WithShape(rows), tensor.Of(tensor.Float32))))
	n.targets = G.NewVector(g, tensor.Float32, G.WithShape(rows), G.WithName("targets"),
		G.WithValue(tensor.New(tensor.WithShape(rows), tensor.Of(tensor.Float32))))
	V := cfg.VocabSize
	if distill {
		n.teacher = G.NewMatrix(g, tensor.Float32, G.WithShape(rows, V), G.WithName("teacher"),
			G.WithValue(tensor.New(tensor.WithShape(rows, V), tensor.Of(tensor.Float32))))
	}
	inv, ascale := cfg.RopeInvFreq()
	rt := newRopeTable(inv, ascale, T)
	eps := float32(cfg.RMSNormEps)
	scale := float32(1 / math.Sqrt(float64(cfg.HeadDim)))

	var err error
	must := func(x *G.Node, e error) *G.Node {
		if err == nil && e != nil {
			err = e
		}
		return x
	}
	x := must(embed(node["model.embed_tokens.weight"], n.ids))
	for li := range cfg.NumLayers {
		p := "model.layers." + strconv.Itoa(li) + "."
		a := &attnShape{B: B, T: T, H: cfg.NumHeads, KV: cfg.NumKVHeads, D: cfg.HeadDim, scale: scale, loops: attnLoops}
		if mask.lazy(li) {
			a.sink, a.window = mask.Sink, mask.Window
		}
		xn := must(rmsNorm(x, node[p+"input_layernorm.weight"], eps))
		q := must(linear(xn, node[p+"self_attn.q_proj.weight"]))
		k := must(linear(xn, node[p+"self_attn.k_proj.weight"]))
		v := must(linear(xn, node[p+"self_attn.v_proj.weight"]))
		if cfg.AttentionBias {
			q = must(addBias(q, node[p+"self_attn.q_proj.bias"]))
			k = must(addBias(k, node[p+"self_attn.k_proj.bias"]))
			v = must(addBias(v, node[p+"self_attn.v_proj.bias"]))
		}
		q = must(rope(q, rt, cfg.NumHeads))
		k = must(rope(k, rt, cfg.NumKVHeads))
		att := must(attend(q, k, v, a))
		x = must(G.Add(x, must(linear(att, node[p+"self_attn.o_proj.weight"]))))
		xn = must(rmsNorm(x, node[p+"post_attention_layernorm.weight"], eps))
		gt := must(linear(xn, node[p+"mlp.gate_proj.weight"]))
		up := must(linear(xn, node[p+"mlp.up_proj.weight"]))
		x = must(G.Add(x, must(linear(must(swigluNode(gt, up)), node[p+"mlp.down_proj.weight"]))))
	}
	xn := must(rmsNorm(x, node["model.norm.weight"], eps))
	head := node["lm_head.weight"]
	if cfg.TieEmbeddings {
		head = node["model.embed_tokens.weight"]
	}
	logits := must(linear(xn, head))
	n.loss = must(lossNode(logits, n.targets, n.teacher))
	if err != nil {
		return nil, fmt.Errorf("train: building the graph: %w", err)
	}
	G.Read(n.loss, &n.lossVal)
	if grad {
		if n.grads, err = G.Grad(n.loss, n.params...); err != nil {
			return nil, fmt.Errorf("train: differentiating the graph: %w", err)
		}
		n.gradVals = make([]G.Value, len(n.grads))
		for i, gn := range n.grads {
			G.Read(gn, &n.gradVals[i])
		}
	}
	n.vm = G.NewTapeMachine(g)
	return n, nil
}

// batch is one step's input: B·T token ids, the target of each row (-1: not scored) and,
// for distillation, the teacher's probabilities of each row.
type batch struct {
	ids, targets []float32
	teacher      []float32
}

// run executes the graph on b and returns the loss; grads (when built) land in gradVals.
func (n *net) run(b *batch) (float64, error) {
	set := func(x *G.Node, v []float32) {
		copy(x.Value().Data().([]float32), v)
	}
	set(n.ids, b.ids)
	set(n.targets, b.targets)
	if n.teacher != nil {
		set(n.teacher, b.teacher)
	}
	defer n.vm.Reset()
	if err := n.vm.RunAll(); err != nil {
		return 0, fmt.Errorf("train: running the graph: %w", err)
	}
	v, err := floats(n.lossVal)
	if err != nil {
		return 0, err
	}
	return float64(v[0]), nil
}

// grad returns parameter i's gradient from the last run.
func (n *net) grad(i int) []float32 {
	f, _ := floats(n.gradVals[i])
	return f
}
