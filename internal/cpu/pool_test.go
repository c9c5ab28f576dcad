package cpu

import (
	"sync/atomic"
	"testing"
)

// countTask counts visits per unit and records which workers ran.
type countTask struct {
	hits    []atomic.Int32
	workers [64]atomic.Bool
}

func (t *countTask) Chunk(worker, lo, hi int) {
	t.workers[worker].Store(true)
	for i := lo; i < hi; i++ {
		t.hits[i].Add(1)
	}
}

func TestPoolRunCoversEveryUnitOnce(t *testing.T) {
	for _, threads := range []int{1, 2, 5} {
		p := NewPool(threads)
		for _, total := range []int{0, 1, 2, 3, 10, 1000} {
			for _, chunk := range []int{1, 3, 64} {
				for _, workers := range []int{0, 1, 2} {
					task := &countTask{hits: make([]atomic.Int32, total)}
					p.Run(task, total, chunk, workers)
					for i := range task.hits {
						if h := task.hits[i].Load(); h != 1 {
							t.Fatalf("threads=%d total=%d chunk=%d: unit %d visited %d times", threads, total, chunk, i, h)
						}
					}
					for w := range task.workers {
						if task.workers[w].Load() && w >= threads {
							t.Fatalf("threads=%d workers=%d: worker %d ran", threads, workers, w)
						}
					}
					if workers == 1 {
						for w := 1; w < len(task.workers); w++ {
							if task.workers[w].Load() {
								t.Fatalf("workers=1: helper %d ran", w)
							}
						}
					}
				}
			}
		}
		p.Close()
		p.Close() // idempotent
		func() {
			defer func() {
				if recover() == nil {
					t.Fatal("Run after Close did not panic")
				}
			}()
			p.Run(&countTask{hits: make([]atomic.Int32, 1)}, 1, 1, 0)
		}()
	}
}

func TestPoolRunAllocatesNothing(t *testing.T) {
	p := NewPool(2)
	defer p.Close()
	task := &countTask{hits: make([]atomic.Int32, 100)}
	if n := testing.AllocsPerRun(100, func() { p.Run(task, 100, 10, 0) }); n != 0 {
		t.Fatalf("Run allocates %v times", n)
	}
}

func TestChunkSize(t *testing.T) {
	p := NewPool(2)
	defer p.Close()
	for _, c := range []struct{ total, min, align, want int }{
		{1000, 16, 4, 64}, {10, 16, 4, 16}, {1, 1, 1, 1}, {0, 0, 0, 1}, {4864, 1024, 16, 1024},
	} {
		if got := p.ChunkSize(c.total, c.min, c.align); got != c.want {
			t.Errorf("ChunkSize(%d, %d, %d) = %d, want %d", c.total, c.min, c.align, got, c.want)
		}
	}
}
