package train

import (
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// The model's differentiable building blocks as gorgonia nodes. Shapes are fixed when the
// graph is built: x is [rows][width] with rows = B·T.

// linear returns x·wᵀ for x [n][in] and w [out][in] (Hugging Face's weight layout).
func linear(x, w *G.Node) (*G.Node, error) {
	n, in := x.Shape()[0], x.Shape()[1]
	out := w.Shape()[0]
	op := newOp("linear", []int{2, 2}, tensor.Shape{n, out}, func(y []float32, a [][]float32) {
		gemm(false, true, n, out, in, a[0], a[1], 0, y)
	})
	return apply(op, []bool{true, true}, func(ins G.Nodes, _, dy *G.Node) (G.Nodes, error) {
		dx := newOp("linear.dx", []int{2, 2}, tensor.Shape{n, in}, func(y []float32, a [][]float32) {
			gemm(false, false, n, in, out, a[0], a[1], 0, y) // dy·w
		})
		dw := newOp("linear.dw", []int{2, 2}, tensor.Shape{out, in}, func(y []float32, a [][]float32) {
			gemm(true, false, out, in, n, a[0], a[1], 0, y) // dyᵀ·x
		})
		gx, err := G.ApplyOp(dx, dy, ins[1])
		if err != nil {
			return nil, err
		}
		gw, err := G.ApplyOp(dw, dy, ins[0])
		if err != nil {
			return nil, err
		}
		return G.Nodes{gx, gw}, nil
	}, x, w)
}

// addBias returns x + b broadcast over the rows of x [n][c], b [c].
func addBias(x, b *G.Node) (*G.Node, error) {
	n, c := x.Shape()[0], x.Shape()[1]
	op := newOp("bias", []int{2, 1}, tensor.Shape{n, c}, func(y []float32, a [][]float32) {
		for r := range n {
			for i := range c {
				y[r*c+i] = a[0][r*c+i] + a[1][i]
			}
		}
	})
	return apply(op, []bool{true, true}, func(_ G.Nodes, _, dy *G.Node) (G.Nodes, error) {
		db := newOp("bias.db", []int{2}, tensor.Shape{c}, func(y []float32, a [][]float32) {
			for i := range y {
				y[i] = 0
			}
			for r := range n {
				for i := range c {
					y[i] += a[0][r*c+i]
				}
			}
		})
		g, err := G.ApplyOp(db, dy)
		if err != nil {
			return nil, err
		}
		return G.Nodes{dy, g}, nil
	}, x, b)
}

// rmsNorm returns RMSNorm(x)·w for x [n][h], w [h].
func rmsNorm(x, w *G.Node, eps float32) (*G.Node, error) {
	shape := x.Shape().Clone()
	h := shape[1]
	op := newOp("rmsnorm", []int{2, 1}, shape, func(y []float32, a [][]float32) {
		rmsNormRows(y, a[0], a[1], eps)
	})
	return apply(op, []bool{true, true}, func(ins G.Nodes, _, dy *G.Node) (G.Nodes, error) {
		n := shape.TotalSize()
		back := newOp("rmsnorm.back", []int{2, 1, 2}, tensor.Shape{n + h}, func(y []float32, a [][]float32) {
			rmsNormBack(y[:n], y[n:], a[0], a[1], a[2], eps)
		})
		p, err := G.ApplyOp(back, ins[0], ins[1], dy)
		if err != nil {
			return nil, err
		}
		return unpack(p, shape, tensor.Shape{h})
	}, x, w)
}

// rope rotates x [B·T][heads·D] by the positions of its rows (row r at position r mod T).
func rope(x *G.Node, t *ropeTable, heads int) (*G.Node, error) {
	shape := x.Shape().Clone()
	op := newOp("rope", []int{2}, shape, func(y []float32, a [][]float32) {
		t.apply(y, a[0], heads, false)
	})
	return apply(op, []bool{true}, func(_ G.Nodes, _, dy *G.Node) (G.Nodes, error) {
		back := newOp("rope.back", []int{2}, shape, func(y []float32, a [][]float32) {
			t.apply(y, a[0], heads, true)
		})
		g, err := G.ApplyOp(back, dy)
		return G.Nodes{g}, err
	}, x)
}

// attend returns the attention of q [B·T][H·D] over k, v [B·T][KV·D] under a's mask. The
// forward keeps each row's log-sum-exp (and, on the dense route of a graph with a backward,
// the probabilities) in buffers of this node for its gradient Op, which the tape always runs
// after it in the same pass (the buffers are private to the node).
func attend(q, k, v *G.Node, a *attnShape) (*G.Node, error) {
	qs, ks := q.Shape().Clone(), k.Shape().Clone()
	lse := make([]float32, qs[0]*a.H)
	var keep []float32 // the dense route's probabilities, once a backward exists
	op := newOp("attention", []int{2, 2, 2}, qs, func(y []float32, in [][]float32) {
		attnForward(y, lse, keep, in[0], in[1], in[2], a)
	})
	return apply(op, []bool{true, true, true}, func(ins G.Nodes, out, dy *G.Node) (G.Nodes, error) {
		nq, nk := qs.TotalSize(), ks.TotalSize()
		if a.dense() {
			keep = make([]float32, a.B*a.H*a.T*a.T)
		}
		back := newOp("attention.back", []int{2, 2, 2, 2, 2}, tensor.Shape{nq + 2*nk}, func(y []float32, in [][]float32) {
			attnBackward(y[:nq], y[nq:nq+nk], y[nq+nk:], in[0], in[1], in[2], in[3], lse, keep, in[4], a)
		})
		p, err := G.ApplyOp(back, ins[0], ins[1], ins[2], out, dy)
		if err != nil {
			return nil, err
		}
		return unpack(p, qs, ks, ks)
	}, q, k, v)
}

// swigluNode returns silu(g)·u elementwise.
func swigluNode(g, u *G.Node) (*G.Node, error) {
	shape := g.Shape().Clone()
	op := newOp("swiglu", []int{2, 2}, shape, func(y []float32, a [][]float32) {
		swiglu(y, a[0], a[1])
	})
	return apply(op, []bool{true, true}, func(ins G.Nodes, _, dy *G.Node) (G.Nodes, error) {
		n := shape.TotalSize()
		back := newOp("swiglu.back", []int{2, 2, 2}, tensor.Shape{2 * n}, func(y []float32, a [][]float32) {
			swigluBack(y[:n], y[n:], a[0], a[1], a[2])
		})
		p, err := G.ApplyOp(back, ins[0], ins[1], dy)
		if err != nil {
			return nil, err
		}
		return unpack(p, shape, shape)
	}, g, u)
}

// embed returns the rows of table [V][h] named by ids [n] (token ids stored as float32).
func embed(table, ids *G.Node) (*G.Node, error) {
	V, h := table.Shape()[0], table.Shape()[1]
	n := ids.Shape()[0]
	op := newOp("embed", []int{2, 1}, tensor.Shape{n, h}, func(y []float32, a [][]float32) {
		for r, id := range a[1] {
			copy(y[r*h:(r+1)*h], a[0][int(id)*h:(int(id)+1)*h])
		}
	})
	return apply(op, []bool{true, false}, func(ins G.Nodes, _, dy *G.Node) (G.Nodes, error) {
		back := newOp("embed.back", []int{1, 2}, tensor.Shape{V, h}, func(y []float32, a [][]float32) {
			for i := range y {
				y[i] = 0
			}
			for r, id := range a[0] {
				row := y[int(id)*h : (int(id)+1)*h]
				for i, g := range a[1][r*h : (r+1)*h] {
					row[i] += g
				}
			}
		})
		g, err := G.ApplyOp(back, ins[1], dy)
		return G.Nodes{g, nil}, err
	}, table, ids)
}

// lossNode returns the mean loss (see lossRows) of logits [n][V] against targets [n]
// (negative: row not scored) and, when teacher is non-nil, the teacher's probabilities [n][V].
func lossNode(logits, targets, teacher *G.Node) (*G.Node, error) {
	V := logits.Shape()[1]
	shape := logits.Shape().Clone()
	ins := []*G.Node{logits, targets}
	dims := []int{2, 1}
	if teacher != nil {
		ins = append(ins, teacher)
		dims = append(dims, 2)
	}
	tp := func(a [][]float32) []float32 { // a: logits, targets[, teacher]
		if teacher != nil {
			return a[2]
		}
		return nil
	}
	// The forward computes the gradient too (into grad, once a backward exists) and the
	// backward scales it by the output's gradient: one pass over the logits per step.
	var grad []float32
	op := newOp("loss", dims, nil, func(y []float32, a [][]float32) {
		y[0] = float32(lossRows(grad, a[0], a[1], tp(a), V, 1))
	})
	wrt := make([]bool, len(ins))
	wrt[0] = true
	return apply(op, wrt, func(in G.Nodes, loss, dy *G.Node) (G.Nodes, error) {
		grad = make([]float32, shape.TotalSize())
		// The loss is an input only to order this op after the forward that fills grad.
		back := newOp("loss.back", []int{0, 0}, shape, func(y []float32, a [][]float32) {
			s := a[0][0]
			for i, g := range grad {
				y[i] = s * g
			}
		})
		g, err := G.ApplyOp(back, dy, loss)
		out := make(G.Nodes, len(in))
		out[0] = g
		return out, err
	}, ins...)
}
