package loader

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
	"gorgonia.org/tensor"
)

// ConfigFile and GenerationConfigFile are the JSON files Open reads.
const (
	ConfigFile           = "config.json"
	GenerationConfigFile = "generation_config.json"
)

// Checkpoint is an opened Hugging Face checkpoint: its Config, optional
// GenerationConfig and the tensors of its safetensors file(s). Open maps the
// files read-only into memory (golang.org/x/sys/unix.Mmap); OpenFS reads them
// into memory. A Checkpoint is safe for concurrent use by multiple
// goroutines; slices and tensors it hands out that share its memory are valid
// until Close and must not be written.
type Checkpoint struct {
	dir     string
	cfg     Config
	gen     GenerationConfig
	tensors []TensorInfo   // sorted by name
	byName  map[string]int // name → index in tensors
	data    map[string][]byte
	mapped  map[string]bool // files whose data is an mmap

	mu     sync.RWMutex
	closed bool
}

// Open opens the checkpoint in directory dir: config.json (required),
// generation_config.json (optional) and model.safetensors or, when that is
// absent, model.safetensors.index.json and the shards it names. Every header
// is validated (see ReadHeader); a tensor named by the index but missing from
// its shard is an ErrNotFound error naming both. Call Close when done.
func Open(dir string) (*Checkpoint, error) {
	c, err := open(dirSource{dir})
	if err != nil {
		return nil, err
	}
	c.dir = dir
	return c, nil
}

// OpenFS is Open for a file system: the same files at the root of fsys, read
// into memory instead of mapped (useful with fstest.MapFS in tests). Dir
// returns ".".
func OpenFS(fsys fs.FS) (*Checkpoint, error) {
	c, err := open(fsSource{fsys})
	if err != nil {
		return nil, err
	}
	c.dir = "."
	return c, nil
}

// source abstracts the directory and the fs.FS cases.
type source interface {
	readSmall(name string) ([]byte, error) // JSON files
	exists(name string) bool
	load(name string) ([]byte, bool, error) // weight files: bytes, mmapped?
	name(file string) string                // for error messages
}

type dirSource struct{ dir string }

func (s dirSource) name(file string) string { return filepath.Join(s.dir, file) }

func (s dirSource) exists(name string) bool {
	_, err := os.Stat(filepath.Join(s.dir, name))
	return err == nil
}

func (s dirSource) readSmall(name string) ([]byte, error) {
	return os.ReadFile(filepath.Join(s.dir, name))
}

func (s dirSource) load(name string) ([]byte, bool, error) {
	f, err := os.Open(filepath.Join(s.dir, name))
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, false, err
	}
	if !st.Mode().IsRegular() {
		return nil, false, fmt.Errorf("not a regular file")
	}
	size := st.Size()
	if size == 0 {
		return []byte{}, false, nil
	}
	if size > math.MaxInt {
		return nil, false, fmt.Errorf("file of %d bytes is too large to map", size)
	}
	b, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, false, fmt.Errorf("mmap: %w", err)
	}
	return b, true, nil
}

type fsSource struct{ fsys fs.FS }

func (s fsSource) name(file string) string { return file }

func (s fsSource) exists(name string) bool {
	_, err := fs.Stat(s.fsys, name)
	return err == nil
}

func (s fsSource) readSmall(name string) ([]byte, error) { return fs.ReadFile(s.fsys, name) }

func (s fsSource) load(name string) ([]byte, bool, error) {
	b, err := fs.ReadFile(s.fsys, name)
	return b, false, err
}

func fileErr(src source, file string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return &FormatError{File: src.name(file), Msg: "file does not exist", Err: ErrNotFound}
	}
	return &FormatError{File: src.name(file), Msg: err.Error(), Err: ErrFormat}
}

func open(src source) (_ *Checkpoint, err error) {
	c := &Checkpoint{byName: map[string]int{}, data: map[string][]byte{}, mapped: map[string]bool{}}
	defer func() {
		if err != nil {
			_ = c.unmap() // the open error is the one to report
		}
	}()
	b, err := src.readSmall(ConfigFile)
	if err != nil {
		return nil, fileErr(src, ConfigFile, err)
	}
	if c.cfg, err = ParseConfig(bytes.NewReader(b)); err != nil {
		return nil, withFile(err, src.name(ConfigFile))
	}
	if src.exists(GenerationConfigFile) {
		b, err := src.readSmall(GenerationConfigFile)
		if err != nil {
			return nil, fileErr(src, GenerationConfigFile, err)
		}
		if c.gen, err = ParseGenerationConfig(bytes.NewReader(b)); err != nil {
			return nil, withFile(err, src.name(GenerationConfigFile))
		}
	}

	var idx *shardIndex
	files := []string{SingleFile}
	if !src.exists(SingleFile) {
		if !src.exists(IndexFile) {
			return nil, &FormatError{File: src.name(SingleFile),
				Msg: fmt.Sprintf("no weights: neither %s nor %s exists", SingleFile, IndexFile), Err: ErrNotFound}
		}
		b, err := src.readSmall(IndexFile)
		if err != nil {
			return nil, fileErr(src, IndexFile, err)
		}
		ix, err := parseIndex(b)
		if err != nil {
			var fe *FormatError
			if errors.As(err, &fe) {
				fe.File = src.name(IndexFile)
			}
			return nil, err
		}
		idx, files = &ix, ix.files
	}

	for _, file := range files {
		data, mapped, err := src.load(file)
		if err != nil {
			return nil, fileErr(src, file, err)
		}
		c.data[file] = data
		c.mapped[file] = mapped
		h, err := ReadHeader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return nil, withFile(err, src.name(file))
		}
		for _, t := range h.Tensors {
			if j, dup := c.byName[t.Name]; dup {
				return nil, &FormatError{File: src.name(file), Tensor: t.Name,
					Msg: fmt.Sprintf("tensor also in %s", c.tensors[j].File), Err: ErrFormat}
			}
			if idx != nil {
				if want, ok := idx.weightMap[t.Name]; ok && want != file {
					return nil, &FormatError{File: src.name(file), Tensor: t.Name,
						Msg: fmt.Sprintf("index maps this tensor to %s", want), Err: ErrFormat}
				}
			}
			t.File = file
			c.byName[t.Name] = len(c.tensors)
			c.tensors = append(c.tensors, t)
		}
	}
	if idx != nil {
		names := make([]string, 0, len(idx.weightMap))
		for n := range idx.weightMap {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			if _, ok := c.byName[n]; !ok {
				return nil, &FormatError{File: src.name(idx.weightMap[n]), Tensor: n,
					Msg: fmt.Sprintf("tensor listed in %s is missing from its shard", IndexFile), Err: ErrNotFound}
			}
		}
	}
	sort.Slice(c.tensors, func(i, j int) bool { return c.tensors[i].Name < c.tensors[j].Name })
	for i, t := range c.tensors {
		c.byName[t.Name] = i
	}
	return c, nil
}

// Dir returns the directory passed to Open ("." for OpenFS).
func (c *Checkpoint) Dir() string { return c.dir }

// Config returns the parsed config.json.
func (c *Checkpoint) Config() Config { return c.cfg }

// Generation returns the parsed generation_config.json, or the zero value
// if the checkpoint has none.
func (c *Checkpoint) Generation() GenerationConfig { return c.gen }

// Tensors returns a description of every tensor, sorted by name. The slice is
// a copy; its Shape slices are shared and must not be modified.
func (c *Checkpoint) Tensors() []TensorInfo {
	return append([]TensorInfo(nil), c.tensors...)
}

// Tensor returns the description of the named tensor and whether it exists.
func (c *Checkpoint) Tensor(name string) (TensorInfo, bool) {
	i, ok := c.byName[name]
	if !ok {
		return TensorInfo{}, false
	}
	return c.tensors[i], true
}

// bytesOf returns the tensor's data; callers hold c.mu for reading.
func (c *Checkpoint) bytesOf(name string) (TensorInfo, []byte, error) {
	if c.closed {
		return TensorInfo{}, nil, &FormatError{File: c.dir, Tensor: name, Msg: "checkpoint is closed", Err: fs.ErrClosed}
	}
	i, ok := c.byName[name]
	if !ok {
		file := c.dir
		if len(c.data) == 1 {
			for f := range c.data {
				file = filepath.Join(c.dir, f)
			}
		}
		return TensorInfo{}, nil, &FormatError{File: file, Tensor: name, Msg: "no such tensor", Err: ErrNotFound}
	}
	t := c.tensors[i]
	d := c.data[t.File]
	return t, d[t.Offset : t.Offset+t.Size : t.Offset+t.Size], nil
}

// Raw returns the named tensor's bytes (little endian, no copy: valid until
// Close, must not be written), its dtype and shape. An unknown name gives
// ErrNotFound.
func (c *Checkpoint) Raw(name string) ([]byte, DType, []int, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	t, b, err := c.bytesOf(name)
	if err != nil {
		return nil, 0, nil, err
	}
	return b, t.DType, append([]int(nil), t.Shape...), nil
}

// Float32 returns the named tensor as a float32 *tensor.Dense of the tensor's
// shape (a scalar has shape [1]; a tensor with no elements gives ErrShape,
// since *tensor.Dense cannot hold one). F32 data whose address is 4-byte aligned is
// not copied: the tensor is backed by the checkpoint's memory, valid until
// Close and must not be written. F16, BF16 and F64 data, and misaligned F32
// data, are converted into a new slice. Integer and bool dtypes give ErrDType;
// an unknown name gives ErrNotFound.
func (c *Checkpoint) Float32(name string) (*tensor.Dense, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	t, b, err := c.bytesOf(name)
	if err != nil {
		return nil, err
	}
	n := int(t.Size) / t.DType.Size()
	if n == 0 {
		return nil, &FormatError{File: filepath.Join(c.dir, t.File), Tensor: name,
			Msg: fmt.Sprintf("tensor of shape %v has no elements; *tensor.Dense cannot hold it (use Raw)", t.Shape), Err: ErrShape}
	}
	var out []float32
	switch t.DType {
	case F32:
		if n > 0 && uintptr(unsafe.Pointer(&b[0]))%4 == 0 {
			out = unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), n)
		} else {
			out = make([]float32, n)
			decodeF32(out, b)
		}
	case F16:
		out = make([]float32, n)
		decodeF16(out, b)
	case BF16:
		out = make([]float32, n)
		decodeBF16(out, b)
	case F64:
		out = make([]float32, n)
		decodeF64(out, b)
	default:
		return nil, &FormatError{File: filepath.Join(c.dir, t.File), Tensor: name,
			Msg: fmt.Sprintf("cannot convert %s to float32", t.DType), Err: ErrDType}
	}
	d, err := newDense(out, t.Shape)
	if err != nil {
		return nil, &FormatError{File: filepath.Join(c.dir, t.File), Tensor: name, Msg: err.Error(), Err: ErrShape}
	}
	return d, nil
}

// newDense wraps data (non-empty) in a *tensor.Dense of the given shape; a
// scalar becomes shape [1]. gorgonia panics on shapes it cannot represent;
// that is turned into an error.
func newDense(data []float32, shape []int) (d *tensor.Dense, err error) {
	if len(shape) == 0 {
		shape = []int{1}
	}
	defer func() {
		if r := recover(); r != nil {
			d, err = nil, fmt.Errorf("tensor.New with shape %v: %v", shape, r)
		}
	}()
	return tensor.New(tensor.WithShape(append([]int(nil), shape...)...), tensor.WithBacking(data)), nil
}

// Close releases the checkpoint's memory (unmapping its files). Tensors and
// byte slices obtained from it must not be used afterwards. Calling Close
// more than once is harmless.
func (c *Checkpoint) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	return c.unmap()
}

func (c *Checkpoint) unmap() error {
	var first error
	for f, b := range c.data {
		if c.mapped[f] {
			if err := unix.Munmap(b); err != nil && first == nil {
				first = &FormatError{File: filepath.Join(c.dir, f), Msg: fmt.Sprintf("munmap: %v", err), Err: ErrFormat}
			}
		}
		delete(c.data, f)
	}
	return first
}
