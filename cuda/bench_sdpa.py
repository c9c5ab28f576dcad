"""Times PyTorch's scaled_dot_product_attention on the shapes of the cuda package benchmarks.

Prefill: causal attention of n bf16 queries over n keys; decode: one query over n cached keys.
GQA is passed with enable_gqa=True where this PyTorch has it; it is also timed with K/V expanded
to every query head beforehand (expansion not timed), and the faster of the two is the baseline.
Prints one line per case: "sdpa <kernel> <layout> ctx<N>K <ms> ms [variant]".
"""
import sys
import time

import torch
import torch.nn.functional as F

LAYOUTS = [("qwen0.5b", 14, 2, 64), ("llama8b", 32, 8, 128)]
CONTEXTS = [1 << 10, 8 << 10, 32 << 10]


def timeit(fn, min_time=0.3):
    fn()
    torch.cuda.synchronize()
    iters = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        if dt >= min_time or iters >= 1 << 16:
            return dt / iters * 1e3
        iters = max(iters * 2, int(iters * min_time / max(dt, 1e-6) * 1.2))


def main():
    dev = torch.device("cuda")
    print("sdpa torch", torch.__version__, "device", torch.cuda.get_device_name(0), flush=True)
    for name, h, kvh, d in LAYOUTS:
        g = h // kvh
        for n in CONTEXTS:
            for kind in ("prefill", "decode"):
                nq = n if kind == "prefill" else 1
                q = torch.randn(1, h, nq, d, device=dev, dtype=torch.bfloat16)
                k = torch.randn(1, kvh, n, d, device=dev, dtype=torch.bfloat16)
                v = torch.randn(1, kvh, n, d, device=dev, dtype=torch.bfloat16)
                causal = kind == "prefill"
                results = []
                try:
                    ms = timeit(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True))
                    results.append((ms, "enable_gqa"))
                except Exception as e:  # older torch or unsupported backend
                    print("sdpa", kind, name, f"ctx{n >> 10}K", "enable_gqa failed:", str(e).splitlines()[0], flush=True)
                ke = k.repeat_interleave(g, dim=1).contiguous()
                ve = v.repeat_interleave(g, dim=1).contiguous()
                ms = timeit(lambda: F.scaled_dot_product_attention(q, ke, ve, is_causal=causal))
                results.append((ms, "expanded"))
                for ms, var in results:
                    print("sdpa", kind, name, f"ctx{n >> 10}K", f"{ms:.4f}", "ms", var, flush=True)
                del q, k, v, ke, ve
                torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
