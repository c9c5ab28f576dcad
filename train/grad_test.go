package train

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Every custom Op's gradient, taken through gorgonia's Grad and TapeMachine exactly as the
// training graph does, is compared with central finite differences of a naive float64 twin
// of the op's forward. Tolerance: 1e-4·max|fd| per input tensor plus 1e-6 (the float32
// backward carries ~1e-7 relative rounding; a wrong term in a gradient is off by O(1)).

type gradCase struct {
	name   string
	shapes [][]int // input shapes
	wrt    []bool  // differentiable inputs
	fill   func(i int, x []float32, r *rand.Rand)
	build  func(in []*G.Node) (*G.Node, error)
	twin   func(in [][]float64) []float64
}

func randFill(_ int, x []float32, r *rand.Rand) {
	for j := range x {
		x[j] = float32(r.NormFloat64())
	}
}

// dotConst returns Σ out·c, with gradient c (the upstream gradient of the check).
func dotConst(out *G.Node, c []float32) (*G.Node, error) {
	shape := out.Shape().Clone()
	op := newOp("dotconst", []int{len(shape)}, nil, func(y []float32, a [][]float32) {
		var s float64
		for i, x := range a[0] {
			s += float64(x) * float64(c[i])
		}
		y[0] = float32(s)
	})
	return apply(op, []bool{true}, func(_ G.Nodes, _, g *G.Node) (G.Nodes, error) {
		back := newOp("dotconst.back", []int{0}, shape, func(y []float32, a [][]float32) {
			for i := range y {
				y[i] = a[0][0] * c[i]
			}
		})
		n, err := G.ApplyOp(back, g)
		return G.Nodes{n}, err
	}, out)
}

func runGradCase(t *testing.T, c gradCase) {
	t.Helper()
	r := rand.New(rand.NewPCG(7, uint64(len(c.name))))
	g := G.NewGraph()
	vals := make([][]float32, len(c.shapes))
	nodes := make([]*G.Node, len(c.shapes))
	var wrt []*G.Node
	for i, s := range c.shapes {
		n := 1
		for _, d := range s {
			n *= d
		}
		vals[i] = make([]float32, n)
		c.fill(i, vals[i], r)
		v := tensor.New(tensor.WithShape(s...), tensor.WithBacking(vals[i]))
		nodes[i] = G.NewTensor(g, tensor.Float32, len(s), G.WithShape(s...), G.WithValue(v), G.WithName(c.name+string(rune('a'+i))))
		if c.wrt[i] {
			wrt = append(wrt, nodes[i])
		}
	}
	out, err := c.build(nodes)
	require.NoError(t, err)
	dy := make([]float32, out.Shape().TotalSize())
	if len(out.Shape()) == 0 {
		dy = []float32{1}
	}
	for i := range dy {
		dy[i] = float32(r.NormFloat64())
	}
	var cost *G.Node
	if len(out.Shape()) == 0 {
		cost = out
		dy[0] = 1
	} else {
		cost, err = dotConst(out, dy)
		require.NoError(t, err)
	}
	grads, err := G.Grad(cost, wrt...)
	require.NoError(t, err)
	gv := make([]G.Value, len(grads))
	for i := range grads {
		G.Read(grads[i], &gv[i])
	}
	var outV G.Value
	G.Read(out, &outV)
	vm := G.NewTapeMachine(g)
	defer vm.Close()
	require.NoError(t, vm.RunAll())

	in64 := make([][]float64, len(vals))
	for i, v := range vals {
		in64[i] = make([]float64, len(v))
		for j, x := range v {
			in64[i][j] = float64(x)
		}
	}
	// The forward agrees with the twin.
	got, err := floats(outV)
	require.NoError(t, err)
	want := c.twin(in64)
	var scale, fe float64
	for i := range want {
		scale = math.Max(scale, math.Abs(want[i]))
		fe = math.Max(fe, math.Abs(float64(got[i])-want[i]))
	}
	require.LessOrEqual(t, fe, 1e-5*(1+scale), "%s forward", c.name)

	L := func() float64 {
		var s float64
		for i, y := range c.twin(in64) {
			s += y * float64(dy[i])
		}
		return s
	}
	k := 0
	for i := range c.shapes {
		if !c.wrt[i] {
			continue
		}
		an, err := floats(gv[k])
		require.NoError(t, err)
		k++
		fd := make([]float64, len(in64[i]))
		for j := range in64[i] {
			x := in64[i][j]
			h := 1e-6 * math.Max(1, math.Abs(x))
			in64[i][j] = x + h
			lp := L()
			in64[i][j] = x - h
			lm := L()
			in64[i][j] = x
			fd[j] = (lp - lm) / (2 * h)
		}
		var mx, e float64
		for j := range fd {
			mx = math.Max(mx, math.Abs(fd[j]))
			e = math.Max(e, math.Abs(float64(an[j])-fd[j]))
		}
		require.LessOrEqual(t, e, 1e-4*mx+1e-6, "%s: gradient of input %d (max |fd| %g)", c.name, i, mx)
		t.Logf("%s input %d: max err %.2e, max |g| %.2e", c.name, i, e, mx)
	}
}

// attnTwin is the naive float64 attention: the full masked score matrix per head.
func attnTwin(q, k, v []float64, a *attnShape) []float64 {
	T, H, KV, D := a.T, a.H, a.KV, a.D
	out := make([]float64, len(q))
	for b := range a.B {
		for h := range H {
			kh := h / (H / KV)
			for i := range T {
				s := make([]float64, T)
				mx := math.Inf(-1)
				for j := range T {
					vis := j <= i
					if a.window > 0 {
						vis = j <= i && (j < a.sink || j > i-a.window)
					}
					if !vis {
						s[j] = math.Inf(-1)
						continue
					}
					var d float64
					for x := range D {
						d += q[(b*T+i)*H*D+h*D+x] * k[(b*T+j)*KV*D+kh*D+x]
					}
					s[j] = d * float64(a.scale)
					mx = math.Max(mx, s[j])
				}
				var z float64
				for j := range s {
					s[j] = math.Exp(s[j] - mx)
					z += s[j]
				}
				for j := range T {
					for x := range D {
						out[(b*T+i)*H*D+h*D+x] += s[j] / z * v[(b*T+j)*KV*D+kh*D+x]
					}
				}
			}
		}
	}
	return out
}

func TestOpGradients(t *testing.T) {
	const n, in, out = 6, 5, 4
	ids := func(i int, x []float32, r *rand.Rand) {
		if i == 1 {
			for j := range x {
				x[j] = float32(r.IntN(7))
			}
			return
		}
		randFill(i, x, r)
	}
	rt := newRopeTable([]float32{1, 0.1}, 1, 3)
	cases := []gradCase{
		{name: "linear", shapes: [][]int{{n, in}, {out, in}}, wrt: []bool{true, true}, fill: randFill,
			build: func(x []*G.Node) (*G.Node, error) { return linear(x[0], x[1]) },
			twin: func(a [][]float64) []float64 {
				y := make([]float64, n*out)
				for r := range n {
					for o := range out {
						for i := range in {
							y[r*out+o] += a[0][r*in+i] * a[1][o*in+i]
						}
					}
				}
				return y
			}},
		{name: "bias", shapes: [][]int{{n, in}, {in}}, wrt: []bool{true, true}, fill: randFill,
			build: func(x []*G.Node) (*G.Node, error) { return addBias(x[0], x[1]) },
			twin: func(a [][]float64) []float64 {
				y := make([]float64, n*in)
				for r := range n {
					for i := range in {
						y[r*in+i] = a[0][r*in+i] + a[1][i]
					}
				}
				return y
			}},
		{name: "rmsnorm", shapes: [][]int{{n, in}, {in}}, wrt: []bool{true, true}, fill: randFill,
			build: func(x []*G.Node) (*G.Node, error) { return rmsNorm(x[0], x[1], 1e-5) },
			twin: func(a [][]float64) []float64 {
				y := make([]float64, n*in)
				for r := range n {
					var ss float64
					for i := range in {
						ss += a[0][r*in+i] * a[0][r*in+i]
					}
					inv := 1 / math.Sqrt(ss/in+1e-5)
					for i := range in {
						y[r*in+i] = a[1][i] * a[0][r*in+i] * inv
					}
				}
				return y
			}},
		{name: "rope", shapes: [][]int{{6, 2 * 4}}, wrt: []bool{true}, fill: randFill,
			build: func(x []*G.Node) (*G.Node, error) { return rope(x[0], rt, 2) },
			twin: func(a [][]float64) []float64 {
				y := make([]float64, len(a[0]))
				for r := range 6 {
					p := r % 3
					for h := range 2 {
						for i := range 2 {
							c, s := float64(rt.cos[p*2+i]), float64(rt.sin[p*2+i])
							o := r*8 + h*4
							x1, x2 := a[0][o+i], a[0][o+i+2]
							y[o+i], y[o+i+2] = x1*c-x2*s, x2*c+x1*s
						}
					}
				}
				return y
			}},
		{name: "swiglu", shapes: [][]int{{n, in}, {n, in}}, wrt: []bool{true, true}, fill: randFill,
			build: func(x []*G.Node) (*G.Node, error) { return swigluNode(x[0], x[1]) },
			twin: func(a [][]float64) []float64 {
				y := make([]float64, len(a[0]))
				for i, g := range a[0] {
					y[i] = g / (1 + math.Exp(-g)) * a[1][i]
				}
				return y
			}},
		{name: "embed", shapes: [][]int{{7, in}, {n}}, wrt: []bool{true, false}, fill: ids,
			build: func(x []*G.Node) (*G.Node, error) { return embed(x[0], x[1]) },
			twin: func(a [][]float64) []float64 {
				y := make([]float64, n*in)
				for r, id := range a[1] {
					copy(y[r*in:(r+1)*in], a[0][int(id)*in:(int(id)+1)*in])
				}
				return y
			}},
	}
	for _, l := range []struct {
		name string
		kl   bool
	}{{"loss.ce", false}, {"loss.kl", true}} {
		V := 7
		shapes := [][]int{{n, V}, {n}}
		wrt := []bool{true, false}
		if l.kl {
			shapes = append(shapes, []int{n, V})
			wrt = append(wrt, false)
		}
		kl := l.kl
		cases = append(cases, gradCase{name: l.name, shapes: shapes, wrt: wrt,
			fill: func(i int, x []float32, r *rand.Rand) {
				switch i {
				case 0:
					randFill(i, x, r)
				case 1:
					for j := range x {
						x[j] = float32(r.IntN(V))
					}
					x[2] = -1 // one unscored row
				case 2:
					for j := range x {
						x[j] = float32(r.Float64())
					}
					for row := 0; row < len(x); row += V {
						var s float32
						for _, p := range x[row : row+V] {
							s += p
						}
						for j := row; j < row+V; j++ {
							x[j] /= s
						}
					}
				}
			},
			build: func(x []*G.Node) (*G.Node, error) {
				if kl {
					return lossNode(x[0], x[1], x[2])
				}
				return lossNode(x[0], x[1], nil)
			},
			twin: func(a [][]float64) []float64 {
				var s float64
				cnt := 0
				for r := range n {
					if a[1][r] < 0 {
						continue
					}
					cnt++
					row := a[0][r*V : (r+1)*V]
					mx := math.Inf(-1)
					for _, x := range row {
						mx = math.Max(mx, x)
					}
					var z float64
					for _, x := range row {
						z += math.Exp(x - mx)
					}
					lse := mx + math.Log(z)
					if !kl {
						s += lse - row[int(a[1][r])]
						continue
					}
					for j, x := range row {
						if p := a[2][r*V+j]; p > 0 {
							s += p * (math.Log(p) - (x - lse))
						}
					}
				}
				return []float64{s / float64(cnt)}
			}})
	}
	for _, m := range []struct {
		name         string
		sink, window int
		T            int
		loops        bool
	}{{"attention.causal", 0, 0, 7, false}, {"attention.streaming", 2, 3, 7, false}, {"attention.nosink", 0, 2, 7, false},
		{"attention.causal.dense", 0, 0, denseMin + 1, false}, {"attention.causal.loops", 0, 0, denseMin + 1, true},
		{"attention.streaming.long", 3, 5, denseMin + 1, false}} {
		a := &attnShape{B: 2, T: m.T, H: 4, KV: 2, D: 4, sink: m.sink, window: m.window, scale: 0.5, loops: m.loops}
		if m.T > 7 { // fewer heads keep the float64 twin's finite differences fast
			a.B, a.H = 1, 2
		}
		qs, ks := []int{a.B * a.T, a.H * a.D}, []int{a.B * a.T, a.KV * a.D}
		cases = append(cases, gradCase{name: m.name, shapes: [][]int{qs, ks, ks}, wrt: []bool{true, true, true}, fill: randFill,
			build: func(x []*G.Node) (*G.Node, error) { return attend(x[0], x[1], x[2], a) },
			twin:  func(in [][]float64) []float64 { return attnTwin(in[0], in[1], in[2], a) }})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { runGradCase(t, c) })
	}
}

// TestExpf compares the float32 exponential with math.Exp over the range attention uses.
func TestExpf(t *testing.T) {
	for x := -90.0; x <= 0; x += 0.001 {
		got, want := float64(expf(float32(x))), math.Exp(float64(float32(x)))
		if want < 1e-37 {
			continue
		}
		require.InEpsilon(t, want, got, 3e-7, "expf(%v)", x)
	}
}
