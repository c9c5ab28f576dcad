package train

import (
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// These benchmarks compare gorgonia's own ops with this package's custom Ops on the shapes
// of a stories260K training step (8·256 rows), forward plus backward through Grad and the
// TapeMachine; they are the measurements behind using custom Ops.

func randTensor(r *rand.Rand, shape ...int) *tensor.Dense {
	n := 1
	for _, d := range shape {
		n *= d
	}
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64()) * 0.1
	}
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(x))
}

// benchGraph runs build's output, summed, forward and backward b.N times.
func benchGraph(b *testing.B, inputs []*tensor.Dense, build func(g *G.ExprGraph, in []*G.Node) (*G.Node, error)) {
	g := G.NewGraph()
	var nodes []*G.Node
	for i, t := range inputs {
		nodes = append(nodes, G.NewTensor(g, tensor.Float32, t.Dims(), G.WithShape(t.Shape()...), G.WithValue(t),
			G.WithName(string(rune('a'+i)))))
	}
	out, err := build(g, nodes)
	if err != nil {
		b.Fatal(err)
	}
	cost, err := G.Sum(out)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := G.Grad(cost, nodes...); err != nil {
		b.Fatal(err)
	}
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	b.ResetTimer()
	c0 := cpuTime()
	for range b.N {
		if err := vm.RunAll(); err != nil {
			b.Fatal(err)
		}
		vm.Reset()
	}
	b.ReportMetric((cpuTime()-c0).Seconds()/float64(b.N)*1e3, "cpu-ms/op")
}

// BenchmarkLinear: x [2048][64] times wᵀ, w [172][64] (the MLP's gate projection).
func BenchmarkLinear(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	in := func() []*tensor.Dense { return []*tensor.Dense{randTensor(r, 2048, 64), randTensor(r, 172, 64)} }
	b.Run("gorgonia", func(b *testing.B) {
		benchGraph(b, in(), func(_ *G.ExprGraph, x []*G.Node) (*G.Node, error) {
			wt, err := G.Transpose(x[1])
			if err != nil {
				return nil, err
			}
			return G.Mul(x[0], wt)
		})
	})
	b.Run("custom", func(b *testing.B) {
		benchGraph(b, in(), func(_ *G.ExprGraph, x []*G.Node) (*G.Node, error) { return linear(x[0], x[1]) })
	})
}

// BenchmarkAttention: causal attention of one sequence of 256 tokens, one head of width 8,
// as gorgonia ops (q·kᵀ·scale + mask, SoftMax, ·v) and as the custom Op; a training step has
// 8 sequences × 8 heads × 3 causal layers of these.
func BenchmarkAttention(b *testing.B) {
	const T, D = 256, 8
	r := rand.New(rand.NewPCG(2, 2))
	in := func() []*tensor.Dense {
		return []*tensor.Dense{randTensor(r, T, D), randTensor(r, T, D), randTensor(r, T, D)}
	}
	b.Run("gorgonia", func(b *testing.B) {
		mask := make([]float32, T*T)
		for i := range T {
			for j := i + 1; j < T; j++ {
				mask[i*T+j] = -1e9
			}
		}
		benchGraph(b, in(), func(g *G.ExprGraph, x []*G.Node) (*G.Node, error) {
			kt, err := G.Transpose(x[1])
			if err != nil {
				return nil, err
			}
			s, err := G.Mul(x[0], kt)
			if err != nil {
				return nil, err
			}
			if s, err = G.Mul(s, G.NewConstant(float32(1/2.8284271))); err != nil {
				return nil, err
			}
			m := G.NewMatrix(g, tensor.Float32, G.WithShape(T, T), G.WithValue(tensor.New(tensor.WithShape(T, T), tensor.WithBacking(mask))))
			if s, err = G.Add(s, m); err != nil {
				return nil, err
			}
			p, err := G.SoftMax(s)
			if err != nil {
				return nil, err
			}
			return G.Mul(p, x[2])
		})
	})
	b.Run("custom", func(b *testing.B) {
		a := &attnShape{B: 1, T: T, H: 1, KV: 1, D: D, scale: 1 / 2.8284271}
		benchGraph(b, in(), func(_ *G.ExprGraph, x []*G.Node) (*G.Node, error) { return attend(x[0], x[1], x[2], a) })
	})
}
