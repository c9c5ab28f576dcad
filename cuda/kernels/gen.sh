#!/usr/bin/env bash
# gen.sh regenerates attention.fatbin (sm_90 cubin + compute_90 PTX, loadable by newer drivers
# through the PTX JIT) from attention.cu with nvcc (CUDA 11.8 or newer). The result is committed
# so that users of the cuda build tag need no nvcc. Run from anywhere: bash cuda/kernels/gen.sh
set -euo pipefail
cd "$(dirname "$0")"
nvcc -O3 -std=c++14 -fatbin \
	-gencode arch=compute_90,code=sm_90 \
	-gencode arch=compute_90,code=compute_90 \
	-o attention.fatbin attention.cu
echo "wrote $(pwd)/attention.fatbin ($(stat -c %s attention.fatbin) bytes)"
