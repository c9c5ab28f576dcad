//go:build cuda

package cuda

import "unsafe"

func unsafePtr(s []float32) unsafe.Pointer { return unsafe.Pointer(&s[0]) }
