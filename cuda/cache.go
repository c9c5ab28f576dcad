//go:build cuda

package cuda

import (
	"fmt"

	"gorgonia.org/cu"

	"github.com/lighttransfer/lighttransfer-go/kvcache"
)

// Cache is a KV cache in device memory with one store per model layer, following the policies
// of package kvcache: a Full layer keeps every token in arrival order (slot = arrival index) and
// grows in blocks; a Streaming(sink, window) layer keeps the first sink tokens ever appended in
// slots [0, sink) and the rest in a ring of window slots (slot sink + (a-sink) mod window for
// arrival index a, the oldest overwritten). K and V are stored as bf16, positions as int32.
// Not safe for concurrent mutation.
type Cache struct {
	d      *Device
	shape  kvcache.Shape
	block  int
	layers []cacheLayer
}

type cacheLayer struct {
	pol       kvcache.Policy
	k, v, pos *Buffer
	capacity  int // allocated slots
	count     int // tokens ever appended (arrival index of the next one)
}

// cacheBlock is the growth granularity of full layers, in tokens.
const cacheBlock = 256

// NewCache makes a cache with one layer per policy. Full layers preallocate reserve tokens
// (0: allocate on first append; they grow by doubling in blocks of 256 tokens); streaming layers
// allocate sink+window slots at once. Fails with ErrPolicy on a bad policy.
func (d *Device) NewCache(s kvcache.Shape, policies []kvcache.Policy, reserve int) (*Cache, error) {
	if s.KVHeads <= 0 || s.HeadDim <= 0 {
		return nil, fmt.Errorf("%w: shape %+v", ErrPolicy, s)
	}
	c := &Cache{d: d, shape: s, block: cacheBlock, layers: make([]cacheLayer, len(policies))}
	for i, p := range policies {
		if p.Sink < 0 || p.Window < 0 {
			return nil, fmt.Errorf("%w: layer %d: %+v", ErrPolicy, i, p)
		}
		c.layers[i] = cacheLayer{pol: p}
		n := reserve
		if p.IsStreaming() {
			n = p.Sink + p.Window
		}
		if n > 0 {
			if err := c.realloc(i, n); err != nil {
				c.Free()
				return nil, err
			}
		}
	}
	return c, nil
}

// realloc gives layer i room for n slots, keeping its first count slots (full layers only).
func (c *Cache) realloc(i, n int) error {
	l := &c.layers[i]
	w := c.shape.Width()
	d := c.d
	k, err := d.Alloc(BF16, n*w)
	if err != nil {
		return err
	}
	v, err := d.Alloc(BF16, n*w)
	if err != nil {
		k.Free()
		return err
	}
	pos, err := d.Alloc(I32, n)
	if err != nil {
		k.Free()
		v.Free()
		return err
	}
	d.lock()
	// zero K/V so that empty slots hold finite values; positions -1 mark them empty
	err = cu.MemsetD16(k.ptr, 0, int64(n*w))
	if err == nil {
		err = cu.MemsetD16(v.ptr, 0, int64(n*w))
	}
	if err == nil {
		err = cu.MemsetD32(pos.ptr, 0xffffffff, int64(n))
	}
	keep := min(l.count, l.capacity)
	if err == nil && keep > 0 {
		if err = cu.MemcpyDtoD(k.ptr, l.k.ptr, int64(keep*w*2)); err == nil {
			if err = cu.MemcpyDtoD(v.ptr, l.v.ptr, int64(keep*w*2)); err == nil {
				err = cu.MemcpyDtoD(pos.ptr, l.pos.ptr, int64(keep*4))
			}
		}
	}
	d.unlock()
	if err != nil {
		k.Free()
		v.Free()
		pos.Free()
		return fmt.Errorf("cuda: cache layer %d: %w", i, err)
	}
	l.k.Free()
	l.v.Free()
	l.pos.Free()
	l.k, l.v, l.pos, l.capacity = k, v, pos, n
	return nil
}

// Layers returns the number of layers.
func (c *Cache) Layers() int { return len(c.layers) }

// Policy returns layer's policy.
func (c *Cache) Policy(layer int) kvcache.Policy { return c.layers[layer].pol }

// Len returns the number of tokens layer holds now.
func (c *Cache) Len(layer int) int {
	l := &c.layers[layer]
	if l.pol.IsStreaming() {
		return min(l.count, l.pol.Sink+l.pol.Window)
	}
	return l.count
}

// Bytes returns the device memory held by layer: slots × (2·Width·2 + 4).
func (c *Cache) Bytes(layer int) int64 {
	return int64(c.layers[layer].capacity) * int64(4*c.shape.Width()+4)
}

// Append stores n tokens: k, v F32 [n][Width] in device memory (after RoPE), at positions
// pos0..pos0+n-1, converting them to bf16. Queued. Panics on buffer sizes.
func (c *Cache) Append(layer int, k, v *Buffer, n int, pos0 int32) error {
	if n <= 0 {
		return nil
	}
	w := c.shape.Width()
	need(k, F32, n*w, "Cache.Append k")
	need(v, F32, n*w, "Cache.Append v")
	l := &c.layers[layer]
	if !l.pol.IsStreaming() && l.count+n > l.capacity {
		nc := max(2*l.capacity, l.count+n)
		nc = (nc + c.block - 1) / c.block * c.block
		if err := c.realloc(layer, nc); err != nil {
			return err
		}
	}
	d := c.d
	d.lock()
	defer d.unlock()
	total := n * w
	blocks := min((total+255)/256, d.sms*8)
	if err := d.launch("lt_append", [3]int{blocks, 1, 1}, 256, 0, l.k, l.v, l.pos, k, v, n, w, l.count, pos0,
		l.pol.Sink, l.pol.Window); err != nil {
		return err
	}
	l.count += n
	return nil
}

// View returns layer's slots for [Device.Decode] (valid until the next Append, Convert or Free).
func (c *Cache) View(layer int) KV {
	l := &c.layers[layer]
	return KV{K: l.k, V: l.v, Pos: l.pos, Slots: c.Len(layer)}
}

// Convert turns full layer into a streaming one in place (Test mode, docs/method.md §3): it keeps the
// first p.Sink and the last p.Window-1 tokens in arrival order, places them where a streaming
// layer would hold them, and frees the full store at once. Converting to Full, a streaming layer,
// or with a bad policy fails with ErrPolicy.
func (c *Cache) Convert(layer int, p kvcache.Policy) error {
	l := &c.layers[layer]
	if !p.IsStreaming() || p.Sink < 0 || l.pol.IsStreaming() {
		return fmt.Errorf("%w: convert layer %d from %+v to %+v", ErrPolicy, layer, l.pol, p)
	}
	w := c.shape.Width()
	d := c.d
	slots := p.Sink + p.Window
	k, err := d.Alloc(BF16, slots*w)
	if err != nil {
		return err
	}
	v, err := d.Alloc(BF16, slots*w)
	if err != nil {
		k.Free()
		return err
	}
	pos, err := d.Alloc(I32, slots)
	if err != nil {
		k.Free()
		v.Free()
		return err
	}
	n := l.count
	// copy moves full-layer slots [a, a+m) to streaming slots [s, s+m).
	copyRun := func(a, s, m int) error {
		if m <= 0 {
			return nil
		}
		eb := int64(w * 2)
		if err := cu.MemcpyDtoD(k.ptr+cu.DevicePtr(int64(s)*eb), l.k.ptr+cu.DevicePtr(int64(a)*eb), int64(m)*eb); err != nil {
			return err
		}
		if err := cu.MemcpyDtoD(v.ptr+cu.DevicePtr(int64(s)*eb), l.v.ptr+cu.DevicePtr(int64(a)*eb), int64(m)*eb); err != nil {
			return err
		}
		return cu.MemcpyDtoD(pos.ptr+cu.DevicePtr(int64(s)*4), l.pos.ptr+cu.DevicePtr(int64(a)*4), int64(m)*4)
	}
	d.lock()
	err = cu.MemsetD16(k.ptr, 0, int64(slots*w))
	if err == nil {
		err = cu.MemsetD16(v.ptr, 0, int64(slots*w))
	}
	if err == nil {
		err = cu.MemsetD32(pos.ptr, 0xffffffff, int64(slots))
	}
	if err == nil {
		err = copyRun(0, 0, min(n, p.Sink))
	}
	if a0 := max(p.Sink, n-(p.Window-1)); err == nil && a0 < n {
		// arrival a goes to ring slot Sink + (a-Sink) % Window; at most one wrap.
		r0 := (a0 - p.Sink) % p.Window
		first := min(n-a0, p.Window-r0)
		err = copyRun(a0, p.Sink+r0, first)
		if err == nil {
			err = copyRun(a0+first, p.Sink, n-a0-first)
		}
	}
	d.unlock()
	if err != nil {
		k.Free()
		v.Free()
		pos.Free()
		return fmt.Errorf("cuda: convert layer %d: %w", layer, err)
	}
	l.k.Free()
	l.v.Free()
	l.pos.Free()
	l.k, l.v, l.pos, l.capacity, l.pol = k, v, pos, slots, p
	return nil
}

// Reset drops every token and keeps the memory and policies (converted layers stay streaming).
func (c *Cache) Reset() error {
	d := c.d
	d.lock()
	defer d.unlock()
	for i := range c.layers {
		l := &c.layers[i]
		l.count = 0
		if l.capacity > 0 {
			if err := cu.MemsetD32(l.pos.ptr, 0xffffffff, int64(l.capacity)); err != nil {
				return fmt.Errorf("cuda: reset layer %d: %w", i, err)
			}
		}
	}
	return nil
}

// Free releases all device memory of the cache.
func (c *Cache) Free() {
	for i := range c.layers {
		l := &c.layers[i]
		l.k.Free()
		l.v.Free()
		l.pos.Free()
		l.k, l.v, l.pos, l.capacity = nil, nil, nil, 0
	}
}
