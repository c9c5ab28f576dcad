package train

import (
	"fmt"
	"hash"
	"hash/fnv"
	"sync/atomic"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// opIDs makes every fnOp's hash unique, so gorgonia never merges two of them (two picks
// from different offsets of one packed gradient look alike otherwise).
var opIDs atomic.Uint32

// fnOp is a gorgonia Op whose forward is a Go function over the float32 backing slices of
// its inputs; the project's training kernels (attention, RMSNorm, RoPE, SwiGLU, the losses,
// matrix products) are all fnOps. Inputs of 0 dims are float32 scalars. grad, when set, builds
// the gradient nodes of the inputs wrt says are differentiable (SDOp); the gradient ops are
// fnOps again.
type fnOp struct {
	name  string
	id    uint32
	in    []int        // dims of each input
	shape tensor.Shape // output shape; empty: a float32 scalar
	do    func(out []float32, in [][]float32)
	wrt   []bool
	grad  func(in G.Nodes, out, grad *G.Node) (G.Nodes, error)
	out   *tensor.Dense // the output, reused by every run (do overwrites all of it)
}

var _ G.SDOp = (*fnOp)(nil)

// newOp returns an fnOp with a fresh id.
func newOp(name string, in []int, shape tensor.Shape, do func(out []float32, in [][]float32)) *fnOp {
	return &fnOp{name: name, id: opIDs.Add(1), in: in, shape: shape, do: do}
}

func typeOf(dims int) hm.Type {
	if dims == 0 {
		return tensor.Float32
	}
	return G.TensorType{Dims: dims, Of: tensor.Float32}
}

// Arity returns the number of inputs (gorgonia.Op).
func (o *fnOp) Arity() int { return len(o.in) }

// Type is the op's function type over float32 tensors of the declared dims.
func (o *fnOp) Type() hm.Type {
	ts := make([]hm.Type, 0, len(o.in)+1)
	for _, d := range o.in {
		ts = append(ts, typeOf(d))
	}
	ts = append(ts, typeOf(len(o.shape)))
	return hm.NewFnType(ts...)
}

// InferShape returns the output shape fixed when the op was built.
func (o *fnOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	if len(o.shape) == 0 {
		return tensor.ScalarShape(), nil
	}
	return o.shape.Clone(), nil
}

// Do runs the forward function on the inputs' float32 backing slices. The output tensor is
// allocated by the first run and reused by the next ones (the graph is fixed and every value
// of a run is consumed within it; do writes every element).
func (o *fnOp) Do(vals ...G.Value) (G.Value, error) {
	if len(vals) != len(o.in) {
		return nil, fmt.Errorf("train: op %s: %d inputs, want %d", o.name, len(vals), len(o.in))
	}
	ins := make([][]float32, len(vals))
	for i, v := range vals {
		f, err := floats(v)
		if err != nil {
			return nil, fmt.Errorf("train: op %s input %d: %w", o.name, i, err)
		}
		ins[i] = f
	}
	if len(o.shape) == 0 {
		var out [1]float32
		o.do(out[:], ins)
		return G.NewF32(out[0]), nil
	}
	if o.out == nil {
		o.out = tensor.New(tensor.WithShape(o.shape.Clone()...), tensor.Of(tensor.Float32))
	}
	o.do(o.out.Data().([]float32), ins)
	return o.out, nil
}

// floats returns the float32 values of a gorgonia value (a one-element slice for a scalar).
func floats(v G.Value) ([]float32, error) {
	switch t := v.(type) {
	case *tensor.Dense:
		d, ok := t.Data().([]float32)
		if !ok {
			return nil, fmt.Errorf("dtype %v, want float32", t.Dtype())
		}
		if len(d) != t.Shape().TotalSize() {
			return nil, fmt.Errorf("a view of shape %v is not contiguous", t.Shape())
		}
		return d, nil
	case *G.F32:
		return []float32{float32(*t)}, nil
	}
	return nil, fmt.Errorf("value of type %T, want a float32 tensor or scalar", v)
}

// ReturnsPtr, CallsExtern and OverwritesInput: the op's own value, pure Go, inputs untouched.
func (o *fnOp) ReturnsPtr() bool     { return false }
func (o *fnOp) CallsExtern() bool    { return false }
func (o *fnOp) OverwritesInput() int { return -1 }

// String returns the op's name.
func (o *fnOp) String() string { return o.name }

// WriteHash writes the name and the unique id, so no two fnOps are merged.
func (o *fnOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "%s#%d", o.name, o.id) }

// Hashcode returns the FNV hash of WriteHash.
func (o *fnOp) Hashcode() uint32 {
	h := fnv.New32a()
	o.WriteHash(h)
	return h.Sum32()
}

// DiffWRT reports which of n inputs the op is differentiable with respect to.
func (o *fnOp) DiffWRT(n int) []bool {
	out := make([]bool, n)
	if o.grad != nil {
		copy(out, o.wrt)
	}
	return out
}

// SymDiff builds the gradient nodes of the inputs from the output's gradient.
func (o *fnOp) SymDiff(in G.Nodes, out, grad *G.Node) (G.Nodes, error) {
	if o.grad == nil {
		return nil, fmt.Errorf("train: op %s is not differentiable", o.name)
	}
	return o.grad(in, out, grad)
}

// pick returns a node holding elements [off, off+size(shape)) of a packed 1-D node (the
// gradient ops that compute several inputs' gradients at once return them packed).
func pick(packed *G.Node, off int, shape ...int) (*G.Node, error) {
	n := 1
	for _, d := range shape {
		n *= d
	}
	op := newOp(fmt.Sprintf("pick[%d:%d]", off, off+n), []int{1}, tensor.Shape(shape), func(out []float32, in [][]float32) {
		copy(out, in[0][off:off+n])
	})
	return G.ApplyOp(op, packed)
}

// unpack splits a packed node into nodes of the given shapes, in order.
func unpack(packed *G.Node, shapes ...tensor.Shape) (G.Nodes, error) {
	out := make(G.Nodes, len(shapes))
	off := 0
	for i, s := range shapes {
		var err error
		if out[i], err = pick(packed, off, s...); err != nil {
			return nil, err
		}
		off += s.TotalSize()
	}
	return out, nil
}

// apply builds op over children, differentiable wrt the inputs marked in wrt through grad.
func apply(op *fnOp, wrt []bool, grad func(in G.Nodes, out, g *G.Node) (G.Nodes, error), children ...*G.Node) (*G.Node, error) {
	op.wrt, op.grad = wrt, grad
	return G.ApplyOp(op, children...)
}
