//go:build cuda

package cuda

import (
	_ "embed"
	"fmt"
	"math"
	"runtime"
	"sync"
	"unsafe"

	"gorgonia.org/cu"
)

//go:embed kernels/attention.fatbin
var fatbin string

// Available reports whether the GPU backend was compiled in (nil with the cuda build tag).
// Whether a usable device exists is reported by [Open].
func Available() error { return nil }

// DType is the element type of a device [Buffer].
type DType uint8

// Element types of device buffers.
const (
	F32  DType = iota + 1 // float32
	BF16                  // bfloat16 (upper half of a float32), 2 bytes
	I32                   // int32
)

// Size returns the size in bytes of one element.
func (t DType) Size() int {
	if t == BF16 {
		return 2
	}
	return 4
}

// String returns "f32", "bf16" or "i32".
func (t DType) String() string {
	switch t {
	case F32:
		return "f32"
	case BF16:
		return "bf16"
	case I32:
		return "i32"
	}
	return fmt.Sprintf("DType(%d)", uint8(t))
}

// Device is one GPU with the attention kernels loaded. Its methods are safe for concurrent use
// (they are serialised); kernels run on the default stream, in call order.
type Device struct {
	mu     sync.Mutex
	dev    cu.Device
	ctx    cu.CUContext
	mod    cu.Module
	name   string
	sms    int
	fns    map[string]cu.Function
	args   [16]uint64
	params [16]unsafe.Pointer

	// decode workspace (grown on demand)
	opart, mpart, lpart *Buffer
	// lazy-ratio workspace
	mass     *Buffer
	massHost []float32
	// host staging for bf16 copies
	stage []uint16
	// decodeForm selects the decode kernel: 0 default (3), 1 first form (block barrier per
	// chunk), 2 warp-private online softmax with 8 lanes per key, 3 the same with 16 lanes per
	// key for head dim 128. Tests and benchmarks compare them.
	decodeForm int
	// decodeSplitMajor launches forms 2 and 3 with the split index fastest in the grid (the
	// default puts the KV head fastest, so blocks that run together read whole token rows)
	decodeSplitMajor bool
	// prefillForm selects the prefill kernel: 0 default (3), 1 first form (64-row blocks, no
	// copy pipelining), 2 128-row blocks with cp.async stages, 3 as 2 with two blocks per SM for
	// head dim 64.
	prefillForm int
}

// Open retains the primary context of GPU ordinal and loads the kernels. It fails with
// ErrUnsupported on devices older than compute capability 9.0.
func Open(ordinal int) (*Device, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	dev, err := cu.GetDevice(ordinal)
	if err != nil {
		return nil, fmt.Errorf("cuda: device %d: %w", ordinal, err)
	}
	major, err := dev.Attribute(cu.ComputeCapabilityMajor)
	if err != nil {
		return nil, fmt.Errorf("cuda: device %d: %w", ordinal, err)
	}
	if major < 9 {
		return nil, fmt.Errorf("%w: device %d has compute capability %d.x, need 9.0", ErrUnsupported, ordinal, major)
	}
	sms, err := dev.Attribute(cu.MultiprocessorCount)
	if err != nil {
		return nil, fmt.Errorf("cuda: device %d: %w", ordinal, err)
	}
	name, _ := dev.Name()
	ctx, err := dev.RetainPrimaryCtx()
	if err != nil {
		return nil, fmt.Errorf("cuda: device %d: retain context: %w", ordinal, err)
	}
	if err := cu.SetCurrentContext(ctx); err != nil {
		return nil, fmt.Errorf("cuda: device %d: set context: %w", ordinal, err)
	}
	mod, err := cu.LoadData(fatbin)
	if err != nil {
		_ = dev.ReleasePrimaryCtx()
		return nil, fmt.Errorf("cuda: device %d: load kernels: %w", ordinal, err)
	}
	d := &Device{dev: dev, ctx: ctx, mod: mod, name: name, sms: sms, fns: map[string]cu.Function{}}
	for i := range d.params {
		d.params[i] = unsafe.Pointer(&d.args[i])
	}
	for _, n := range []string{"lt_prefill_d64", "lt_prefill_d128", "lt_prefill2_d64", "lt_prefill2_d128", "lt_prefill3_d64", "lt_decode_combine", "lt_decode_combine2", "lt_lazy_d64",
		"lt_lazy_d128", "lt_to_bf16", "lt_append"} {
		if err := d.load(n); err != nil {
			return nil, err
		}
	}
	for _, dim := range []int{64, 128} {
		for _, g := range []int{1, 2, 4, 8} {
			if err := d.load(fmt.Sprintf("lt_decode_d%d_g%d", dim, g)); err != nil {
				return nil, err
			}
			if dim == 128 && g == 8 {
				continue
			}
			if err := d.load(fmt.Sprintf("lt_decode2_d%d_g%d", dim, g)); err != nil {
				return nil, err
			}
			if dim == 128 {
				if err := d.load(fmt.Sprintf("lt_decode3_d%d_g%d", dim, g)); err != nil {
					return nil, err
				}
			}
		}
	}
	return d, nil
}

func (d *Device) load(name string) error {
	f, err := d.mod.Function(name)
	if err != nil {
		return fmt.Errorf("cuda: kernel %s: %w", name, err)
	}
	d.fns[name] = f
	return nil
}

// Name returns the device name reported by the driver.
func (d *Device) Name() string { return d.name }

// SMs returns the number of streaming multiprocessors.
func (d *Device) SMs() int { return d.sms }

// lock serialises use of the device and makes its context current on this OS thread.
func (d *Device) lock() {
	d.mu.Lock()
	runtime.LockOSThread()
	if err := cu.SetCurrentContext(d.ctx); err != nil {
		panic(fmt.Sprintf("cuda: set context: %v", err))
	}
}

func (d *Device) unlock() {
	runtime.UnlockOSThread()
	d.mu.Unlock()
}

// Sync waits until every kernel and copy queued on the device has finished.
func (d *Device) Sync() error {
	d.lock()
	defer d.unlock()
	if err := cu.Synchronize(); err != nil {
		return fmt.Errorf("cuda: synchronize: %w", err)
	}
	return nil
}

// Close frees the device's workspaces, unloads the kernels and releases the context. Buffers
// allocated from d must be freed before.
func (d *Device) Close() error {
	for _, b := range []*Buffer{d.opart, d.mpart, d.lpart, d.mass} {
		if b != nil {
			_ = b.Free()
		}
	}
	d.lock()
	defer d.unlock()
	if err := d.mod.Unload(); err != nil {
		return fmt.Errorf("cuda: unload: %w", err)
	}
	if err := d.dev.ReleasePrimaryCtx(); err != nil {
		return fmt.Errorf("cuda: release context: %w", err)
	}
	return nil
}

// launch runs kernel name with the given arguments (each a device pointer, int, int32, int64
// or float32). The caller holds the lock.
func (d *Device) launch(name string, grid [3]int, block, smem int, args ...any) error {
	if len(args) > len(d.args) {
		panic("cuda: too many kernel arguments")
	}
	for i, a := range args {
		switch x := a.(type) {
		case cu.DevicePtr:
			d.args[i] = uint64(x)
		case *Buffer:
			if x == nil {
				d.args[i] = 0
			} else {
				d.args[i] = uint64(x.ptr)
			}
		case int:
			d.args[i] = uint64(uint32(int32(x)))
		case int32:
			d.args[i] = uint64(uint32(x))
		case int64:
			d.args[i] = uint64(x)
		case float32:
			d.args[i] = uint64(math.Float32bits(x))
		default:
			panic(fmt.Sprintf("cuda: kernel argument %d has type %T", i, a))
		}
	}
	if err := d.fns[name].Launch(grid[0], grid[1], grid[2], block, 1, 1, smem, cu.Stream{}, d.params[:len(args)]); err != nil {
		return fmt.Errorf("cuda: launch %s: %w", name, err)
	}
	return nil
}

// Buffer is a block of device memory holding Len elements of one DType.
type Buffer struct {
	d   *Device
	ptr cu.DevicePtr
	n   int
	dt  DType
}

// Alloc allocates n elements of type t (uninitialised).
func (d *Device) Alloc(t DType, n int) (*Buffer, error) {
	if n <= 0 {
		panic(fmt.Sprintf("cuda: Alloc of %d elements", n))
	}
	d.lock()
	defer d.unlock()
	return d.alloc(t, n)
}

func (d *Device) alloc(t DType, n int) (*Buffer, error) {
	p, err := cu.MemAlloc(int64(n) * int64(t.Size()))
	if err != nil {
		return nil, fmt.Errorf("cuda: alloc %d × %v: %w", n, t, err)
	}
	return &Buffer{d: d, ptr: p, n: n, dt: t}, nil
}

// Len returns the number of elements.
func (b *Buffer) Len() int { return b.n }

// DType returns the element type.
func (b *Buffer) DType() DType { return b.dt }

// Ptr returns the device address.
func (b *Buffer) Ptr() cu.DevicePtr { return b.ptr }

// Free releases the memory; the buffer must not be used afterwards. Free of nil is a no-op.
func (b *Buffer) Free() error {
	if b == nil || b.ptr == 0 {
		return nil
	}
	b.d.lock()
	defer b.d.unlock()
	err := cu.MemFree(b.ptr)
	b.ptr = 0
	if err != nil {
		return fmt.Errorf("cuda: free: %w", err)
	}
	return nil
}

// CopyFromF32 copies src into the first len(src) elements: exactly for an F32 buffer, rounded
// to nearest even for a BF16 buffer. Panics on other types or if src is longer than the buffer.
func (b *Buffer) CopyFromF32(src []float32) error {
	if len(src) > b.n {
		panic(fmt.Sprintf("cuda: CopyFromF32 of %d into %d", len(src), b.n))
	}
	if len(src) == 0 {
		return nil
	}
	d := b.d
	d.lock()
	defer d.unlock()
	var err error
	switch b.dt {
	case F32:
		err = cu.MemcpyHtoD(b.ptr, unsafe.Pointer(&src[0]), int64(len(src))*4)
	case BF16:
		if cap(d.stage) < len(src) {
			d.stage = make([]uint16, len(src))
		}
		st := d.stage[:len(src)]
		for i, x := range src {
			st[i] = BF16Bits(x)
		}
		err = cu.MemcpyHtoD(b.ptr, unsafe.Pointer(&st[0]), int64(len(src))*2)
	default:
		panic("cuda: CopyFromF32 into " + b.dt.String())
	}
	if err != nil {
		return fmt.Errorf("cuda: copy to device: %w", err)
	}
	return nil
}

// CopyToF32 copies the first len(dst) elements of an F32 or BF16 buffer into dst (bf16 widened
// exactly). It waits for queued kernels. Panics on other types or if dst is longer than the buffer.
func (b *Buffer) CopyToF32(dst []float32) error {
	if len(dst) > b.n {
		panic(fmt.Sprintf("cuda: CopyToF32 of %d from %d", len(dst), b.n))
	}
	if len(dst) == 0 {
		return nil
	}
	d := b.d
	d.lock()
	defer d.unlock()
	var err error
	switch b.dt {
	case F32:
		err = cu.MemcpyDtoH(unsafe.Pointer(&dst[0]), b.ptr, int64(len(dst))*4)
	case BF16:
		if cap(d.stage) < len(dst) {
			d.stage = make([]uint16, len(dst))
		}
		st := d.stage[:len(dst)]
		err = cu.MemcpyDtoH(unsafe.Pointer(&st[0]), b.ptr, int64(len(dst))*2)
		for i, x := range st {
			dst[i] = math.Float32frombits(uint32(x) << 16)
		}
	default:
		panic("cuda: CopyToF32 from " + b.dt.String())
	}
	if err != nil {
		return fmt.Errorf("cuda: copy from device: %w", err)
	}
	return nil
}

// CopyFromI32 copies src into the first len(src) elements of an I32 buffer.
func (b *Buffer) CopyFromI32(src []int32) error {
	if b.dt != I32 || len(src) > b.n {
		panic(fmt.Sprintf("cuda: CopyFromI32 of %d into %d × %v", len(src), b.n, b.dt))
	}
	if len(src) == 0 {
		return nil
	}
	b.d.lock()
	defer b.d.unlock()
	if err := cu.MemcpyHtoD(b.ptr, unsafe.Pointer(&src[0]), int64(len(src))*4); err != nil {
		return fmt.Errorf("cuda: copy to device: %w", err)
	}
	return nil
}

// CopyToI32 copies the first len(dst) elements of an I32 buffer into dst.
func (b *Buffer) CopyToI32(dst []int32) error {
	if b.dt != I32 || len(dst) > b.n {
		panic(fmt.Sprintf("cuda: CopyToI32 of %d from %d × %v", len(dst), b.n, b.dt))
	}
	if len(dst) == 0 {
		return nil
	}
	b.d.lock()
	defer b.d.unlock()
	if err := cu.MemcpyDtoH(unsafe.Pointer(&dst[0]), b.ptr, int64(len(dst))*4); err != nil {
		return fmt.Errorf("cuda: copy from device: %w", err)
	}
	return nil
}
