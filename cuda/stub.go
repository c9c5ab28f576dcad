//go:build !cuda

package cuda

// Available reports whether the GPU backend was compiled in; without the cuda build tag it
// always returns ErrNotBuilt.
func Available() error { return ErrNotBuilt }
