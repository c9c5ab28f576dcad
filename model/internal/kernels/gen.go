package kernels

// The AVX2/FMA kernels are generated with avo by the separate module in asm/ (the float
// tiles by asm/, the quantized-weight kernels by asm/quant); the outputs are committed so
// that building the library never needs avo.
//go:generate go run -C asm . -out ../tiles_amd64.s -stubs ../tiles_amd64_stub.go -pkg kernels
//go:generate go run -C asm ./quant -out ../quant_amd64.s -stubs ../quant_amd64_stub.go -pkg kernels
