package loader

import "strconv"

// DType is a safetensors element type. The zero value is invalid.
type DType uint8

// The element types this package understands, named as safetensors spells
// them (String returns that spelling, e.g. "BF16", "BOOL").
const (
	F32 DType = iota + 1
	F16
	BF16
	F64
	I64
	I32
	I16
	I8
	U8
	Bool
)

var dtypeNames = [...]string{F32: "F32", F16: "F16", BF16: "BF16", F64: "F64", I64: "I64",
	I32: "I32", I16: "I16", I8: "I8", U8: "U8", Bool: "BOOL"}

var dtypeSizes = [...]int{F32: 4, F16: 2, BF16: 2, F64: 8, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, Bool: 1}

// Size returns the size of one element in bytes, or 0 for an invalid DType.
func (d DType) Size() int {
	if int(d) >= len(dtypeSizes) {
		return 0
	}
	return dtypeSizes[d]
}

// String returns the safetensors name of d ("F32", "BF16", ...), or
// "DType(n)" for an invalid value.
func (d DType) String() string {
	if d != 0 && int(d) < len(dtypeNames) {
		return dtypeNames[d]
	}
	return "DType(" + strconv.Itoa(int(d)) + ")"
}

// parseDType maps a safetensors dtype name to a DType.
func parseDType(s string) (DType, bool) {
	for d := F32; d <= Bool; d++ {
		if dtypeNames[d] == s {
			return d, true
		}
	}
	return 0, false
}
