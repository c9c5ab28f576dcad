//go:build !cuda

package cuda

import (
	"errors"
	"testing"
)

func TestAvailableStub(t *testing.T) {
	if err := Available(); !errors.Is(err, ErrNotBuilt) {
		t.Fatalf("Available() = %v, want ErrNotBuilt", err)
	}
}
