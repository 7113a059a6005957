#!/usr/bin/env python3
"""PyTorch reference for tools/bench/vit.ts: the same ViT-Tiny/4 step at 32 px in PyTorch.

Prints one JSON object on stdout. Meant for Debian's python3-torch (/usr/bin/python3) with
OpenBLAS's pthread variant, Debian's default (the OpenMP one is ≈ 20× slower for small batched
products: tools/bench/README.md). When torch is not importable it prints
{"available": false, "note": ...} and exits 0, so the TypeScript bench can report that.

Usage: /usr/bin/python3 tools/bench/vit_torch.py [--batch 64] [--iters 5] [--warmup 2] [--threads 2]
"""
import argparse
import json
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--img", type=int, default=32)
    ap.add_argument("--patch", type=int, default=4)
    args = ap.parse_args()

    try:
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
    except Exception as exc:  # torch absent or broken: say so, do not fail the TS bench
        print(json.dumps({"available": False, "note": f"PyTorch not importable with {sys.executable}: {exc}"}))
        return 0

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    # ViT-Tiny (D 192, depth 12, 3 heads, MLP ratio 4, qkv bias, LayerNorm eps 1e-6), timm layout.
    dim, depth, heads = 192, 12, 3

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm1 = nn.LayerNorm(dim, eps=1e-6)
            self.qkv = nn.Linear(dim, 3 * dim)
            self.proj = nn.Linear(dim, dim)
            self.norm2 = nn.LayerNorm(dim, eps=1e-6)
            self.fc1 = nn.Linear(dim, 4 * dim)
            self.fc2 = nn.Linear(4 * dim, dim)

        def forward(self, x):
            b, n, d = x.shape
            qkv = self.qkv(self.norm1(x)).reshape(b, n, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
            a = ((q @ k.transpose(-2, -1)) * (d // heads) ** -0.5).softmax(-1)
            x = x + self.proj((a @ v).transpose(1, 2).reshape(b, n, d))
            return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))

    class ViT(nn.Module):
        def __init__(self):
            super().__init__()
            n = (args.img // args.patch) ** 2
            self.patch_embed = nn.Conv2d(3, dim, args.patch, args.patch)
            self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
            self.pos_embed = nn.Parameter(torch.randn(1, n + 1, dim) * 0.02)
            self.blocks = nn.ModuleList([Block() for _ in range(depth)])
            self.norm = nn.LayerNorm(dim, eps=1e-6)

        def forward(self, x):
            x = self.patch_embed(x).flatten(2).transpose(1, 2)
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1) + self.pos_embed
            for blk in self.blocks:
                x = blk(x)
            return self.norm(x)

    model = ViT()
    images = torch.randn(args.batch, 3, args.img, args.img)

    def forward():
        with torch.no_grad():
            model(images)

    def forward_backward():
        model.zero_grad(set_to_none=True)
        loss = model(images).pow(2).mean()
        loss.backward()

    def timed(fn):
        for _ in range(args.warmup):
            fn()
        t0 = time.perf_counter()
        for _ in range(args.iters):
            fn()
        return (time.perf_counter() - t0) * 1000 / args.iters

    fwd = timed(forward)
    fwd_bwd = timed(forward_backward)
    blas = "unknown"
    try:
        cfg = torch.__config__.show()
        blas = next((part.split("=")[1] for part in cfg.replace(",", " ").split() if part.startswith("BLAS_INFO=")), "unknown")
    except Exception:
        pass
    print(json.dumps({
        "available": True,
        "torch": torch.__version__,
        "python": sys.executable,
        "threads": torch.get_num_threads(),
        "blas_info": blas,
        "model": f"ViT-Tiny/{args.patch} at {args.img}px",
        "batch": args.batch,
        "iters": args.iters,
        "forward_ms": round(fwd, 2),
        "forward_images_per_s": round(args.batch / (fwd / 1000), 1),
        "forward_backward_ms": round(fwd_bwd, 2),
        "forward_backward_images_per_s": round(args.batch / (fwd_bwd / 1000), 1),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
