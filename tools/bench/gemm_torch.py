#!/usr/bin/env python3
"""PyTorch reference for tools/bench/gemm-webgpu.ts: torch.matmul on the SiT step's GEMM shapes.

Reads the shapes as JSON on stdin (a list of {name, m, k, n, transA, transB}; op(A) is [m, k],
op(B) is [k, n], a transposed operand is a transposed view of a contiguous tensor, as in the
backward pass), times each product in fp32 (TF32 off on CUDA): median over --iters of --reps
launches, synchronised. Prints one JSON object {available, device, torch, gpu?, ms: {name: ms}};
with --fp16 also fp16_ms: the same products on fp16 operands (what autocast runs them as).
Without torch, or without CUDA for --device cuda, prints {"available": false, "note": ...}.

Usage: python3 tools/bench/gemm_torch.py --device cuda|cpu [--iters 5] [--reps 10] < shapes.json
"""
import argparse
import json
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cuda")
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--fp16", action="store_true")
    args = ap.parse_args()
    shapes = json.load(sys.stdin)
    try:
        import torch
    except Exception as exc:  # noqa: BLE001
        print(json.dumps({"available": False, "note": f"PyTorch not importable: {exc}"}))
        return 0
    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        print(json.dumps({"available": False, "device": "cuda", "torch": torch.__version__,
                          "note": "cuda unavailable"}))
        return 0
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = False
    else:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    def median_ms(a, b):
        times = []
        for i in range(args.iters + 1):  # the first run warms up
            sync()
            t0 = time.perf_counter()
            for _ in range(args.reps):
                c = a @ b
            sync()
            if i > 0:
                times.append((time.perf_counter() - t0) * 1000 / args.reps)
        del c
        times.sort()
        return times[len(times) // 2]

    out, out16 = {}, {}
    for s in shapes:
        m, k, n = s["m"], s["k"], s["n"]
        a = torch.randn((k, m) if s["transA"] else (m, k), device=dev)
        b = torch.randn((n, k) if s["transB"] else (k, n), device=dev)
        a = a.t() if s["transA"] else a
        b = b.t() if s["transB"] else b
        out[s["name"]] = median_ms(a, b)
        if args.fp16:
            try:
                out16[s["name"]] = median_ms(a.half(), b.half())
            except RuntimeError:  # older PyTorch has no fp16 matmul on the CPU
                pass
    info = {"available": True, "device": args.device, "torch": torch.__version__, "ms": out}
    if args.fp16:
        info["fp16_ms"] = out16
    if cuda:
        info["gpu"] = torch.cuda.get_device_name(0)
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
