package model

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"sync"

	"github.com/lighttransfer/lighttransfer-go/internal/bf16"
	"github.com/lighttransfer/lighttransfer-go/loader"
	"github.com/lighttransfer/lighttransfer-go/model/internal/kernels"
)

// q4Scheme is how WeightsQ4 chooses each block's scale and offset (see kernels.Q4Scheme);
// chosen by measurement on stories260K (README).
var q4Scheme = kernels.Q4MinMSE

// quantBits returns the bits a matrix named name is quantized to under format f, or 0 to
// keep it in floating point. Under WeightsQ4 the embedding and the LM head take 8 bits.
func quantBits(f WeightFormat, name string) int {
	switch f {
	case WeightsQ8:
		return 8
	case WeightsQ4:
		if name == embedName || name == lmHeadName {
			return 8
		}
		return 4
	}
	return 0
}

// quantize returns a [rows][cols] matrix of src quantized to bits, rows split over
// GOMAXPROCS goroutines (the 4-bit fit is the slow part of a load).
func quantize(src []float32, rows, cols, bits int) matrix {
	q := kernels.NewQuant(bits, rows, cols)
	workers := min(runtime.GOMAXPROCS(0), max(1, rows/64))
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		lo, hi := rows*w/workers, rows*(w+1)/workers
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := lo; r < hi; r++ {
				q.QuantizeRow(r, src[r*cols:(r+1)*cols], q4Scheme)
			}
		}()
	}
	wg.Wait()
	return matrix{rows: rows, cols: cols, q: &q}
}

// matrix is a row-major [rows][cols] weight matrix held as float32, as bfloat16 bits or
// quantized in blocks (kernels.Quant). Exactly one of f32, bf16 and q is set.
type matrix struct {
	rows, cols int
	f32        []float32
	bf16       []uint16
	q          *kernels.Quant
}

func (w *matrix) bytes() int64 {
	n := int64(4*len(w.f32) + 2*len(w.bf16))
	if w.q != nil {
		n += w.q.Bytes()
	}
	return n
}

func (w *matrix) format() string {
	switch {
	case w.q != nil:
		return "q" + strconv.Itoa(w.q.Bits)
	case w.bf16 != nil:
		return "bf16"
	}
	return "f32"
}

// weightFormat names the format of the layers' matrices (the embedding may differ: q8 under
// WeightsQ4).
func (m *Model) weightFormat() string {
	if len(m.layers) > 0 {
		return m.layers[0].q.format()
	}
	return m.embed.format()
}

// same reports whether w and x share storage (a tied LM head).
func (w *matrix) same(x matrix) bool {
	if w.f32 != nil && x.f32 != nil {
		return &w.f32[0] == &x.f32[0]
	}
	if w.bf16 != nil && x.bf16 != nil {
		return &w.bf16[0] == &x.bf16[0]
	}
	return w.q != nil && w.q == x.q
}

// row widens row r into dst (len cols).
func (w *matrix) row(dst []float32, r int) {
	if w.f32 != nil {
		copy(dst, w.f32[r*w.cols:(r+1)*w.cols])
		return
	}
	if w.q != nil {
		w.q.DequantizeRow(dst, r)
		return
	}
	src := w.bf16[r*w.cols : (r+1)*w.cols]
	for i, b := range src {
		dst[i] = bf16.ToFloat32(b)
	}
}

// binder reads named tensors of a checkpoint into memory, checking shapes. The first error
// sticks; later calls return zero values.
type binder struct {
	ck       *loader.Checkpoint
	format   WeightFormat
	progress func(done, total int64)
	done     int64
	total    int64
	err      error
}

func (b *binder) info(name string, shape ...int) (loader.TensorInfo, bool) {
	if b.err != nil {
		return loader.TensorInfo{}, false
	}
	t, ok := b.ck.Tensor(name)
	if !ok {
		b.err = fmt.Errorf("%w: tensor %q not found (%w)", ErrWeights, name, loader.ErrNotFound)
		return t, false
	}
	if !slices.Equal(t.Shape, shape) {
		b.err = fmt.Errorf("%w: tensor %q in %s has shape %v, want %v", ErrWeights, name, t.File, t.Shape, shape)
		return t, false
	}
	return t, true
}

func (b *binder) report(t loader.TensorInfo) {
	b.done += t.Size
	if b.progress != nil {
		b.progress(b.done, b.total)
	}
}

var _ weightVisitor = (*binder)(nil)

// vector reads a 1-D tensor of n elements as float32 into v.
func (b *binder) vector(v *[]float32, name string, n int, _ float32) {
	t, ok := b.info(name, n)
	if !ok {
		return
	}
	d, err := b.ck.Float32(name)
	if err != nil {
		b.err = fmt.Errorf("%w: %w", ErrWeights, err)
		return
	}
	*v = append([]float32(nil), d.Data().([]float32)...)
	b.report(t)
}

// matrix reads a [rows][cols] tensor in the binder's weight format into w.
func (b *binder) matrix(dst *matrix, name string, rows, cols int) {
	t, ok := b.info(name, rows, cols)
	if !ok {
		return
	}
	w := matrix{rows: rows, cols: cols}
	if bits := quantBits(b.format, name); bits != 0 {
		d, err := b.ck.Float32(name)
		if err != nil {
			b.err = fmt.Errorf("%w: %w", ErrWeights, err)
			return
		}
		*dst = quantize(d.Data().([]float32), rows, cols, bits)
		b.report(t)
		return
	}
	keep16 := b.format == WeightsBF16 || (b.format == WeightsAuto && t.DType == loader.BF16)
	switch {
	case keep16 && t.DType == loader.BF16:
		raw, _, _, err := b.ck.Raw(name)
		if err != nil {
			b.err = fmt.Errorf("%w: %w", ErrWeights, err)
			return
		}
		w.bf16 = make([]uint16, rows*cols)
		for i := range w.bf16 {
			w.bf16[i] = binary.LittleEndian.Uint16(raw[2*i:])
		}
	default:
		d, err := b.ck.Float32(name)
		if err != nil {
			b.err = fmt.Errorf("%w: %w", ErrWeights, err)
			return
		}
		src := d.Data().([]float32)
		if keep16 {
			w.bf16 = make([]uint16, len(src))
			for i, x := range src {
				w.bf16[i] = bf16.FromFloat32(x)
			}
		} else {
			w.f32 = append([]float32(nil), src...)
		}
	}
	*dst = w
	b.report(t)
}

// lmHead shares the embedding when tied, else reads the checkpoint's lm_head.
func (b *binder) lmHead(head, embed *matrix, name string, rows, cols int, tied bool) {
	if tied {
		*head = *embed
		return
	}
	b.matrix(head, name, rows, cols)
}

func (b *binder) layerDone(int, int) error { return b.err }

// randomizer draws a random model's weights: matrix entries uniform with standard deviation
// 0.02 (Hugging Face's initializer range), vectors filled with their table value, all from
// one seeded generator in description order.
type randomizer struct {
	rng      *rand.Rand
	format   WeightFormat
	progress func(done, total int64)
}

var _ weightVisitor = (*randomizer)(nil)

func (r *randomizer) matrix(w *matrix, name string, rows, cols int) {
	*w = matrix{rows: rows, cols: cols}
	// Uniform on [-a, a] has standard deviation a/sqrt(3).
	a := float32(0.02 * math.Sqrt(3))
	if r.format == WeightsBF16 {
		w.bf16 = make([]uint16, rows*cols)
		for i := range w.bf16 {
			w.bf16[i] = bf16.FromFloat32(a * (2*r.rng.Float32() - 1))
		}
		return
	}
	w.f32 = make([]float32, rows*cols)
	for i := range w.f32 {
		w.f32[i] = a * (2*r.rng.Float32() - 1)
	}
	if bits := quantBits(r.format, name); bits != 0 {
		*w = quantize(w.f32, rows, cols, bits)
	}
}

func (r *randomizer) vector(v *[]float32, _ string, n int, fill float32) {
	*v = make([]float32, n)
	if fill != 0 {
		for i := range *v {
			(*v)[i] = fill
		}
	}
}

func (r *randomizer) lmHead(head, embed *matrix, name string, rows, cols int, tied bool) {
	if tied {
		*head = *embed
		return
	}
	r.matrix(head, name, rows, cols)
}

func (r *randomizer) layerDone(i, n int) error {
	if r.progress != nil && i < n {
		r.progress(int64(i+1), int64(n))
	}
	return nil
}

// byteCounter adds up the bytes of a model's weights as they sit in memory (a tied LM head
// once).
type byteCounter struct{ n int64 }

var _ weightVisitor = (*byteCounter)(nil)

func (c *byteCounter) matrix(w *matrix, _ string, _, _ int)            { c.n += w.bytes() }
func (c *byteCounter) vector(v *[]float32, _ string, _ int, _ float32) { c.n += int64(4 * len(*v)) }
func (c *byteCounter) layerDone(int, int) error                        { return nil }

func (c *byteCounter) lmHead(head, embed *matrix, _ string, _, _ int, _ bool) {
	if !head.same(*embed) {
		c.n += head.bytes()
	}
}
