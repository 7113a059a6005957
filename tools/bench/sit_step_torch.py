#!/usr/bin/env python3
"""PyTorch reference for tools/bench/sit_step.ts: one SiT (v3) training step in PyTorch.

The same configuration as the TypeScript bench: ViT-Tiny/4 at 32 px (D 192, depth 12, 3 heads,
MLP ratio 4, qkv bias, LayerNorm eps 1e-6, drop path 0.1 linearly over the blocks), SiT's
projection head CLSHead(D, 256, hidden 4096, BatchNorm) and reconstruction head (3 × [Linear,
GELU] + ConvTranspose2d(D → 3, 4, stride 4)), an EMA teacher (deep copy, no drop path), batch B
images = 2B crops. One step = student on the corrupted views + teacher on the clean views, the
contrastive loss (MoCo-v3 form, ×2τ, both view pairings) + λ·masked L1, backward, per-tensor
gradient clipping at 3.0, AdamW with SiT's two parameter groups, EMA update. fp32, no autocast.
The GMML corruption is drawn once before timing (in SiT it runs in the data-loader workers).
--model tiny (the default sizes above) or small (ViT-S/16 at 224 px: D 384, 6 heads, patch 16);
explicit --img/--patch/--dim/--depth/--heads override the model's sizes.

--device cuda: the same step in fp32 (TF32 matmuls off) on the GPU, synchronised around each
timed step; reports torch.cuda.max_memory_allocated. If CUDA is not available it prints
{"available": false, "note": "cuda unavailable ..."} and exits 0. Works with torch 1.13 and 2.x.

--cpu-memory (--device cpu): instead of timing, the peak of tensor memory in one step (after the
warm-up), the CPU counterpart of max_memory_allocated: the whole run (models, optimiser state,
warm-up) runs under the autograd profiler with memory profiling, and the peak is the highest
running sum of the bytes every operation allocated net, in the order the operations started
(peak_tensor_bytes). Operations are the granularity: a temporary an operation allocates and frees
inside itself is not seen. It needs no GPU, so a lavapipe run can compare its peak with it.

Prints one JSON object on stdout. Meant for Debian's python3-torch (/usr/bin/python3) with
OpenBLAS's pthread variant, Debian's default (the OpenMP one is ≈ 20× slower for the step's small
batched products: tools/bench/README.md). Without torch it prints {"available": false, "note": ...} and
exits 0, so the TypeScript bench can report that.

Usage: /usr/bin/python3 tools/bench/sit_step_torch.py [--model tiny|small] [--device cpu|cuda]
       [--batch 64] [--iters 5] [--warmup 2]
       [--threads 2] [--img 32] [--patch 4] [--dim 192] [--depth 12] [--heads 3]
       [--proj-hidden 4096] [--proj-out 256] [--cpu-memory]
"""
import argparse
import copy
import json
import resource
import sys
import time


MODELS = {
    "tiny": {"img": 32, "patch": 4, "dim": 192, "depth": 12, "heads": 3},
    "small": {"img": 224, "patch": 16, "dim": 384, "depth": 12, "heads": 6},
}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=sorted(MODELS), default="tiny")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--img", type=int, default=None)
    ap.add_argument("--patch", type=int, default=None)
    ap.add_argument("--dim", type=int, default=None)
    ap.add_argument("--depth", type=int, default=None)
    ap.add_argument("--heads", type=int, default=None)
    ap.add_argument("--proj-hidden", type=int, default=4096)
    ap.add_argument("--proj-out", type=int, default=256)
    ap.add_argument("--sync-free-clip", action="store_true", help="clip without a host sync per tensor")
    ap.add_argument("--cpu-memory", action="store_true", help="report a step's peak tensor bytes on the CPU instead of timing")
    args = ap.parse_args()
    for key, value in MODELS[args.model].items():
        if getattr(args, key) is None:
            setattr(args, key, value)

    try:
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
    except Exception as exc:  # torch absent or broken: say so, do not fail the TS bench
        print(json.dumps({"available": False, "note": f"PyTorch not importable with {sys.executable}: {exc}"}))
        return 0

    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        print(json.dumps({"available": False, "device": "cuda", "torch": torch.__version__,
                          "note": f"cuda unavailable in torch {torch.__version__} ({sys.executable})"}))
        return 0
    dev = torch.device(args.device)
    if cuda:  # fp32 means fp32: no TF32 tensor-core matmuls
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    if args.cpu_memory and cuda:
        print("--cpu-memory: only with --device cpu (on cuda the report has max_memory_allocated_bytes)", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    # Memory profiling from before the first tensor: a free of a block allocated before the
    # profiler started is not reported, which would leave the running sum too high.
    memory_profile = torch.autograd.profiler.profile(profile_memory=True) if args.cpu_memory else None
    if memory_profile is not None:
        memory_profile.__enter__()
    torch.manual_seed(0)
    D, depth, H, p, img, B = args.dim, args.depth, args.heads, args.patch, args.img, args.batch
    tau, lam, clip = 0.2, 5.0, 3.0

    class Block(nn.Module):
        def __init__(self, drop):
            super().__init__()
            self.drop = drop
            self.norm1 = nn.LayerNorm(D, eps=1e-6)
            self.qkv = nn.Linear(D, 3 * D)
            self.proj = nn.Linear(D, D)
            self.norm2 = nn.LayerNorm(D, eps=1e-6)
            self.fc1 = nn.Linear(D, 4 * D)
            self.fc2 = nn.Linear(4 * D, D)

        def drop_path(self, x):
            if not self.training or self.drop == 0:
                return x
            keep = (torch.rand(x.shape[0], 1, 1, device=x.device) >= self.drop).float() / (1 - self.drop)
            return x * keep

        def forward(self, x):
            b, n, d = x.shape
            qkv = self.qkv(self.norm1(x)).reshape(b, n, 3, H, d // H).permute(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
            a = ((q @ k.transpose(-2, -1)) * (d // H) ** -0.5).softmax(-1)
            x = x + self.drop_path(self.proj((a @ v).transpose(1, 2).reshape(b, n, d)))
            return x + self.drop_path(self.fc2(F.gelu(self.fc1(self.norm2(x)))))

    class SitNet(nn.Module):
        def __init__(self, drop_path_rate):
            super().__init__()
            n = (img // p) ** 2
            self.patch_embed = nn.Conv2d(3, D, p, p)
            self.cls_token = nn.Parameter(torch.randn(1, 1, D) * 0.02)
            self.pos_embed = nn.Parameter(torch.randn(1, n + 1, D) * 0.02)
            rates = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
            self.blocks = nn.ModuleList([Block(r) for r in rates])
            self.norm = nn.LayerNorm(D, eps=1e-6)
            hid, out = args.proj_hidden, args.proj_out
            self.cls_head = nn.Sequential(
                nn.Linear(D, hid), nn.BatchNorm1d(hid), nn.ReLU(),
                nn.Linear(hid, hid), nn.BatchNorm1d(hid), nn.GELU(),
                nn.Linear(hid, out), nn.BatchNorm1d(out, affine=False),
            )
            self.rec_mlp = nn.Sequential(nn.Linear(D, D), nn.GELU(), nn.Linear(D, D), nn.GELU(), nn.Linear(D, D), nn.GELU())
            self.rec_conv = nn.ConvTranspose2d(D, 3, p, p)

        def forward(self, x):
            z = self.patch_embed(x).flatten(2).transpose(1, 2)
            z = torch.cat([self.cls_token.expand(z.shape[0], -1, -1), z], 1) + self.pos_embed
            for blk in self.blocks:
                z = blk(z)
            z = self.norm(z)
            s = self.cls_head(z[:, 0])
            t = self.rec_mlp(z[:, 1:])
            g = img // p
            rec = self.rec_conv(t.transpose(1, 2).reshape(z.shape[0], D, g, g))
            return s, rec

    student = SitNet(0.1).to(dev).train()
    teacher = copy.deepcopy(student)
    for blk in teacher.blocks:
        blk.drop = 0.0
    for q in teacher.parameters():
        q.requires_grad_(False)
    named = list(student.named_parameters())
    decay = [q for n, q in named if q.ndim > 1 and not n.endswith(".bias")]
    no_decay = [q for n, q in named if not (q.ndim > 1 and not n.endswith(".bias"))]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.04}, {"params": no_decay, "weight_decay": 0.0}], lr=1.25e-4)

    # Inputs: two clean views and their GMML-style corruption (zeroed blocks, ≈ 50 % of pixels).
    x = torch.randn(2 * B, 3, img, img)
    mask = torch.zeros(2 * B, 1, img, img)
    gen = torch.Generator().manual_seed(1)
    for i in range(2 * B):
        while mask[i].mean() < 0.5:
            h, w = torch.randint(1, max(2, int(0.3 * img)), (2,), generator=gen).tolist()
            r, c = torch.randint(0, img - h + 1, (1,), generator=gen).item(), torch.randint(0, img - w + 1, (1,), generator=gen).item()
            mask[i, :, r : r + h, c : c + w] = 1
    x, mask = x.to(dev), mask.to(dev)
    corrupted = x * (1 - mask)
    mask3 = mask.expand(-1, 3, -1, -1)

    def contrastive(q, k):
        q = F.normalize(q, dim=1)
        k = F.normalize(k, dim=1)
        return F.cross_entropy(q @ k.t() / tau, torch.arange(q.shape[0], device=q.device)) * 2 * tau

    sync = torch.cuda.synchronize if cuda else (lambda: None)
    # Per-phase wall time of the timed steps (each phase synchronised on cuda), as sit_step.ts reports.
    phases = {k: 0.0 for k in ("teacher_forward", "student_forward", "backward", "optimizer", "ema")}
    clock = [0.0]

    def lap(name):
        sync()
        now = time.perf_counter()
        if name is not None:
            phases[name] += (now - clock[0]) * 1000
        clock[0] = now

    def step(momentum=0.996):
        lap(None)
        with torch.no_grad():
            t, _ = teacher(x)
        lap("teacher_forward")
        s, rec = student(corrupted)
        lc = contrastive(s[:B], t[B:]) + contrastive(s[B:], t[:B])
        lr = ((rec - x).abs() * mask3).sum() / mask3.sum()
        loss = lc + lam * lr
        lap("student_forward")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        lap("backward")
        if args.sync_free_clip:
            # The same clipping without a host sync per tensor (SiT's `if coef < 1` reads each norm).
            grads = [q.grad for q in student.parameters() if q.grad is not None]
            norms = torch.stack([g.norm(2) for g in grads])
            coefs = (clip / (norms + 1e-6)).clamp(max=1.0)
            torch._foreach_mul_(grads, list(coefs.unbind()))
        else:
            for q in student.parameters():
                if q.grad is not None:
                    norm = q.grad.norm(2)
                    coef = clip / (norm + 1e-6)
                    if coef < 1:
                        q.grad.mul_(coef)
        opt.step()
        lap("optimizer")
        with torch.no_grad():
            for ps, pt in zip(student.parameters(), teacher.parameters()):
                pt.mul_(momentum).add_(ps.detach(), alpha=1 - momentum)
        lap("ema")
        return loss.item()

    for _ in range(args.warmup):
        step()
    if memory_profile is not None:
        with torch.autograd.profiler.record_function("sit_step_measured"):
            loss = step()
        memory_profile.__exit__(None, None, None)
        peak, before, after = peak_tensor_bytes(memory_profile.function_events, "sit_step_measured")
        print(json.dumps({
            "available": True, "torch": torch.__version__, "device": "cpu", "model": args.model,
            "config": {k: getattr(args, k) for k in ("img", "patch", "dim", "depth", "heads")},
            "batch": B, "warmup": args.warmup,
            "peak_tensor_bytes": peak, "tensor_bytes_before_step": before, "tensor_bytes_after_step": after,
            "loss_finite": loss == loss and abs(loss) != float("inf"),
            "params": sum(q.numel() for q in student.parameters()),
            "note": "--cpu-memory: peak of the running sum of tensor bytes allocated (net) per operation, "
                    "in start order, over one step after the warm-up; the whole run was profiled, so "
                    "the sum counts every live tensor (parameters, teacher, moments, gradients)",
        }))
        return 0
    for k in phases:
        phases[k] = 0.0
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times = []
    loss = float("nan")
    for _ in range(args.iters):
        sync()
        t0 = time.perf_counter()
        loss = step()
        sync()
        times.append((time.perf_counter() - t0) * 1000)
    ms = sum(times) / len(times)
    # Which BLAS the process really loaded (Debian's torch links the libblas.so.3 alternative).
    blas = []
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split()[-1]
                if "blas" in path and path not in blas:
                    blas.append(path)
    except OSError:
        pass
    print(
        json.dumps(
            {
                "available": True,
                "torch": torch.__version__,
                "device": args.device,
                "model": args.model,
                "config": {k: getattr(args, k) for k in ("img", "patch", "dim", "depth", "heads")},
                **({"gpu": torch.cuda.get_device_name(0),
                    "max_memory_allocated_bytes": torch.cuda.max_memory_allocated(),
                    "max_memory_reserved_bytes": torch.cuda.max_memory_reserved()} if cuda else {}),
                "threads": torch.get_num_threads(),
                "blas": blas,
                "batch": B,
                "iters": args.iters,
                "warmup": args.warmup,
                "step_ms": round(ms, 1),
                "step_ms_min": round(min(times), 1),
                "images_per_s": round(B / (ms / 1000), 2),
                "phases_ms": {k: round(v / len(times), 1) for k, v in phases.items()},
                "loss_finite": loss == loss and abs(loss) != float("inf"),
                "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "params": sum(q.numel() for q in student.parameters()),
            }
        )
    )
    return 0


def peak_tensor_bytes(events, marker):
    """(peak, before, after) tensor bytes over the `marker` range of a memory-profiled run.

    Each event's own allocation is its net bytes less its children's (a `[memory]` event is a
    free or an allocation outside any operation). Summed in start order from the run's start,
    this is the bytes of live tensors after each operation.
    """
    span = next(e for e in events if e.name == marker).time_range
    own = []
    for e in events:
        net = e.cpu_memory_usage - sum(c.cpu_memory_usage for c in e.cpu_children)
        if net != 0:
            own.append((e.time_range.start, net))
    own.sort(key=lambda x: x[0])
    total, peak, before = 0, 0, None
    for start, net in own:
        if start >= span.start and before is None:
            before = total
        if start > span.end:
            break
        total += net
        if start >= span.start:
            peak = max(peak, total)
    return peak, before if before is not None else total, total


if __name__ == "__main__":
    sys.exit(main())
