//go:build !amd64 || purego

package kernels

// searchLanes8 fills out ([n][3][8]) with goSearch8: no assembly route here.
func searchLanes8(out []float32, x *[QBlock]float32, inv, s []float32) { goSearch8(out, x, inv, s) }
