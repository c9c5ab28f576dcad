package train

import (
	"math/rand/v2"
	"syscall"
	"testing"
	"time"
)

// cpuTime returns the process's user+system CPU time (the machine is shared, so wall time
// alone says little; CPU seconds per step are comparable between runs).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchSeqs returns n random sequences of T tokens of a vocabulary of V.
func benchSeqs(n, T, V int) []Sequence {
	r := rand.New(rand.NewPCG(1, 2))
	out := make([]Sequence, n)
	for i := range out {
		s := Sequence{Tokens: make([]int32, T), Targets: make([]int32, T)}
		for j := range T {
			s.Tokens[j] = int32(r.IntN(V))
		}
		for j := range T {
			s.Targets[j] = -1
			if j+1 < T {
				s.Targets[j] = s.Tokens[j+1]
			}
		}
		out[i] = s
	}
	return out
}

// BenchmarkStep measures one forward+backward of 8 sequences of 256 tokens of stories260K
// with lazy layers [2 4] (sink 4, window 16), cross-entropy loss: causal layers through the
// dense (gemm) attention route and through the per-key loops.
func BenchmarkStep(b *testing.B) {
	for _, loops := range []bool{false, true} {
		name := "dense"
		if loops {
			name = "loops"
		}
		b.Run(name, func(b *testing.B) {
			attnLoops = loops
			defer func() { attnLoops = false }()
			benchStep(b)
		})
	}
}

func benchStep(b *testing.B) {
	w, err := LoadWeights("../testdata/stories260K")
	if err != nil {
		b.Fatal(err)
	}
	const B, T = 8, 256
	n, err := newNet(w, Mask{Lazy: []int{2, 4}, Sink: 4, Window: 16}, B, T, false, true)
	if err != nil {
		b.Fatal(err)
	}
	bt := makeBatch(benchSeqs(B, T, w.Config.VocabSize), 0, B, nil)
	b.ResetTimer()
	c0 := cpuTime()
	for range b.N {
		if _, err := n.run(bt); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(B*T*b.N)/b.Elapsed().Seconds(), "tok/s")
	b.ReportMetric((cpuTime()-c0).Seconds()/float64(b.N), "cpu-s/op")
}
