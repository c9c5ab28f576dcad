#!/usr/bin/env bash
# gpu-check.sh runs on a GPU machine (no Go needed): the cuda-tagged test binary, its
# benchmarks, and PyTorch SDPA on the same shapes for comparison. Results go to $OUT (default
# ./gpu-out). Prepare the binary where Go is installed:
#   go test -c -tags cuda -o cuda.test ./cuda
# and put cuda.test next to this script (or set CUDA_TEST). Usage: bash gpu-check.sh
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${OUT:-$here/gpu-out}"
mkdir -p "$out"
bin="${CUDA_TEST:-$here/cuda.test}"
benchtime="${BENCHTIME:-0.5s}"
{
	nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true
	python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' || true
} 2>&1 | tee "$out/device.txt"
echo "== tests" | tee "$out/summary.txt"
"$bin" -test.v -test.timeout 300s >"$out/test.txt" 2>&1
trc=$?
grep -E '^(--- FAIL|FAIL|ok|PASS)|max abs err|ratio ' "$out/test.txt" | head -80 >>"$out/summary.txt"
echo "test exit $trc" | tee -a "$out/summary.txt"
echo "== benchmarks" | tee -a "$out/summary.txt"
"$bin" -test.run '^$' -test.bench . -test.benchtime "$benchtime" -test.timeout 400s 2>&1 | tee "$out/bench.txt" | grep -E '^Benchmark|FAIL|panic' | tee -a "$out/summary.txt"
echo "== sdpa" | tee -a "$out/summary.txt"
python3 "$here/bench_sdpa.py" 2>&1 | tee "$out/sdpa.txt" | tee -a "$out/summary.txt" | tail -n 40
exit $trc
