package kernels

// The AVX2/FMA kernels are generated with avo by the separate module in asm/;
// the outputs are committed so that building the library never needs avo.
//go:generate go run -C asm . -out ../tiles_amd64.s -stubs ../tiles_amd64_stub.go -pkg kernels
