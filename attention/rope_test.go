package attention

import (
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// testInvFreq returns default (unscaled) RoPE inverse frequencies for head
// width d and base theta, computed in float32 like Hugging Face.
func testInvFreq(d int, theta float64) []float32 {
	f := make([]float32, d/2)
	for i := range f {
		f[i] = float32(1 / math.Pow(theta, float64(2*i)/float64(d)))
	}
	return f
}

// naiveRope is the twin of Rope.Apply, written directly from the Hugging Face
// recipe: cos = cat(freqs, freqs).cos() * scale, q·cos + rotate_half(q)·sin.
func naiveRope(x []float32, pos []int32, heads, d int, invFreq []float32, scale float32) {
	h := d / 2
	cos := make([]float32, d)
	sin := make([]float32, d)
	rh := make([]float32, d)
	for t, p := range pos {
		for i := 0; i < d; i++ {
			angle := float32(p) * invFreq[i%h] // float32 "matmul" of inv_freq by positions
			cos[i] = float32(math.Cos(float64(angle))) * scale
			sin[i] = float32(math.Sin(float64(angle))) * scale
		}
		for hd := 0; hd < heads; hd++ {
			v := x[(t*heads+hd)*d:][:d]
			for i := 0; i < h; i++ { // rotate_half: cat(-x2, x1)
				rh[i] = -v[i+h]
				rh[i+h] = v[i]
			}
			for i := range v {
				v[i] = float32(v[i]*cos[i]) + float32(rh[i]*sin[i])
			}
		}
	}
}

// TestRopeTwin checks Apply bit for bit against the twin, from the table and
// beyond it (positions past maxPos and negative ones are computed on the fly).
func TestRopeTwin(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, tc := range []struct {
		heads, d, maxPos int
		theta            float64
		scale            float32
	}{
		{2, 8, 16, 10000, 1}, {14, 64, 64, 1000000, 1}, {3, 128, 0, 500000, 1}, {1, 256, 10, 10000, 1.1},
		{4, 512, 4, 10000, 1}, // wider than the on-the-fly buffer
	} {
		inv := testInvFreq(tc.d, tc.theta)
		rope := NewRope(inv, tc.scale, tc.maxPos)
		pos := []int32{0, 1, 3, int32(tc.maxPos) - 1, int32(tc.maxPos), 1000, 32767, 131071, -5}
		x := randSlice(r, len(pos)*tc.heads*tc.d, 2)
		want := append([]float32(nil), x...)
		rope.Apply(x, pos, tc.heads, tc.d)
		naiveRope(want, pos, tc.heads, tc.d, inv, tc.scale)
		requireBits(t, x, want, "rope")
	}
}

// TestRopeFloat64 compares with a rotation computed entirely in float64 at
// small positions, where the float32 angle rounding of Hugging Face's recipe
// (|p·invFreq| < 64, so under 4e-6 rad) and float32 products keep the
// difference below 1e-5 on values in [-2, 2].
func TestRopeFloat64(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const heads, d = 3, 64
	inv := testInvFreq(d, 10000)
	rope := NewRope(inv, 1, 32)
	pos := []int32{0, 1, 7, 31, 32, 63}
	x := randSlice(r, len(pos)*heads*d, 2)
	orig := append([]float32(nil), x...)
	rope.Apply(x, pos, heads, d)
	for t2, p := range pos {
		for hd := 0; hd < heads; hd++ {
			for i := 0; i < d/2; i++ {
				o := (t2*heads + hd) * d
				a, b := float64(orig[o+i]), float64(orig[o+i+d/2])
				ang := float64(p) * math.Pow(10000, -float64(2*i)/d)
				c, s := math.Cos(ang), math.Sin(ang)
				require.InDelta(t, a*c-b*s, float64(x[o+i]), 1e-5)
				require.InDelta(t, b*c+a*s, float64(x[o+i+d/2]), 1e-5)
			}
		}
	}
}

// TestRopePairs checks the rotate_half pairing: a unit vector at i moves to
// (cos, sin) at (i, i+d/2), and one at i+d/2 to (-sin, cos).
func TestRopePairs(t *testing.T) {
	const d = 8
	inv := []float32{1, 0.5, 0.25, 0.125}
	rope := NewRope(inv, 1, 8)
	for i := 0; i < d/2; i++ {
		for _, hiSide := range []bool{false, true} {
			x := make([]float32, d)
			j := i
			if hiSide {
				j = i + d/2
			}
			x[j] = 1
			rope.Apply(x, []int32{3}, 1, d)
			ang := float32(3) * inv[i]
			c, s := float32(math.Cos(float64(ang))), float32(math.Sin(float64(ang)))
			want := make([]float32, d)
			if hiSide {
				want[i], want[i+d/2] = -s, c
			} else {
				want[i], want[i+d/2] = c, s
			}
			require.Equal(t, want, x, "pair %d hi=%v", i, hiSide)
		}
	}
	// Position 0 is the identity.
	x := []float32{1, 2, 3, 4, 5, 6, 7, 8}
	rope.Apply(x, []int32{0}, 1, d)
	require.Equal(t, []float32{1, 2, 3, 4, 5, 6, 7, 8}, x)
}

// TestRopeConcurrent applies one Rope from many goroutines, inside and
// outside its table (run with -race).
func TestRopeConcurrent(t *testing.T) {
	inv := testInvFreq(64, 10000)
	rope := NewRope(inv, 1, 100)
	ref := make([]float32, 2*64)
	for i := range ref {
		ref[i] = float32(i%7) - 3
	}
	want := append([]float32(nil), ref...)
	rope.Apply(want, []int32{50, 5000}, 1, 64)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := 0; it < 50; it++ {
				x := append([]float32(nil), ref...)
				rope.Apply(x, []int32{50, 5000}, 1, 64)
				for i := range x {
					if x[i] != want[i] {
						t.Errorf("goroutine result differs at %d", i)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
}

func TestRopePanics(t *testing.T) {
	rope := NewRope([]float32{1, 0.5}, 1, 4)
	require.Panics(t, func() { rope.Apply(make([]float32, 8), []int32{0}, 1, 8) }, "headDim mismatch")
	require.Panics(t, func() { rope.Apply(make([]float32, 7), []int32{0, 1}, 1, 4) }, "len mismatch")
	require.Panics(t, func() { NewRope(nil, 1, 4) }, "empty invFreq")
	require.NotPanics(t, func() { rope.Apply(nil, nil, 1, 4) })
}

func TestRopeNoAllocs(t *testing.T) {
	if testing.CoverMode() != "" || raceEnabled {
		t.Skip("allocation counts are not meaningful under coverage or -race")
	}
	rope := NewRope(testInvFreq(64, 10000), 1, 16)
	x := make([]float32, 3*14*64)
	pos := []int32{1, 15, 40}
	require.Zero(t, testing.AllocsPerRun(20, func() { rope.Apply(x, pos, 14, 64) }))
}
