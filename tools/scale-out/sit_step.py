"""The SiT v3 step in PyTorch, written from the method's description (docs/method.md), not copied.

Student on the corrupted views, EMA teacher on the clean ones; L = Lc + λ·Lr with
Lc = CL(s₁, t₂) + CL(s₂, t₁) (MoCo-v3 form, keys gathered from every process, ×2τ) and Lr the L1
over corrupted elements of both views; per-tensor gradient clipping, AdamW with the lr / wd
schedules (group 0 only is decayed), then θ_t ← m·θ_t + (1 − m)·θ_s for every parameter.
"""
import math

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F


def cosine_schedule(base, final, epochs, per_epoch, warmup_epochs=0):
    """Per-iteration values: linear warm-up from 0 over warmup_epochs·per_epoch steps (both ends
    included), then final + ½(base − final)(1 + cos(π t / T)) over the remaining T steps (§7.1)."""
    total = epochs * per_epoch
    warm = min(warmup_epochs * per_epoch, total - 1)
    ramp = np.linspace(0.0, base, warm) if warm > 0 else np.array([])
    t = np.arange(total - warm)
    return np.concatenate([ramp, final + 0.5 * (base - final) * (1 + np.cos(np.pi * t / len(t)))])


def schedules(args, per_epoch):
    """lr (base lr × total batch / 256), weight decay and teacher momentum per iteration."""
    world = args.get("world_size", 1)
    lr = cosine_schedule(args["lr"] * args["batch_size"] * world / 256.0, args["min_lr"], args["epochs"], per_epoch, args["warmup_epochs"])
    wd = cosine_schedule(args["weight_decay"], args["weight_decay_end"], args["epochs"], per_epoch)
    m = cosine_schedule(args["momentum_teacher"], 1.0, args["epochs"], per_epoch)
    return lr, wd, m


def gather(x):
    """Every process's rows, this process's at its rank (no gradient: keys are the teacher's)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x, 0
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts), dist.get_rank() * x.shape[0]


def contrastive(q, k, temp):
    q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
    keys, offset = gather(k)
    labels = torch.arange(q.shape[0], device=q.device) + offset
    return F.cross_entropy(q @ keys.t() / temp, labels) * (2 * temp)


def losses(student, teacher, clean, corrupted, masks, args):
    """(loss, contrastive, reconstruction). Views: lists of two [B, C, H, W]; masks [B, 1, H, W]."""
    with torch.no_grad():
        t, _ = teacher(torch.cat(clean), recons=False)
    s, rec = student(torch.cat(corrupted))
    s1, s2 = s.chunk(2)
    t1, t2 = t.chunk(2)
    lc = contrastive(s1, t2, args["simclr_temp"]) + contrastive(s2, t1, args["simclr_temp"])
    target = torch.cat(clean)
    mask = torch.cat(masks).expand_as(target) == 1
    lr_ = (rec - target).abs()[mask].mean()
    return lc + args["lmbda"] * lr_, lc, lr_


def clip_per_tensor(model, clip):
    for p in model.parameters():
        if p.grad is not None:
            norm = p.grad.norm(2)
            scale = clip / (norm + 1e-6)
            if scale < 1:
                p.grad.mul_(scale)


def step(student, teacher, optimizer, inputs, args, hyper, on_grads=None):
    """One SiT step; `hyper` = (lr, wd, momentum). Returns the three losses as floats.
    `on_grads(model)` sees the gradients before clipping (the parity test records them)."""
    lr, wd, momentum = hyper
    for i, group in enumerate(optimizer.param_groups):
        group["lr"] = lr
        if i == 0:
            group["weight_decay"] = wd
    loss, lc, lrec = losses(student, teacher, *inputs, args)
    if not math.isfinite(loss.item()):
        raise FloatingPointError(f"loss is {loss.item()}")
    optimizer.zero_grad()
    loss.backward()
    if on_grads:
        on_grads(student)
    if args.get("clip_grad"):
        clip_per_tensor(student, args["clip_grad"])
    optimizer.step()
    with torch.no_grad():
        own = student.module if hasattr(student, "module") else student
        for ps, pt in zip(own.parameters(), teacher.parameters()):
            pt.mul_(momentum).add_(ps.detach(), alpha=1 - momentum)
    return loss.item(), lc.item(), lrec.item()


def gmml_blocks(rng, image, ratio, align, source=None, fill="zeros", max_block=0.3):
    """GMML corruption of one image [C, H, W] (§3.1): random rectangles until ratio·H·W pixels are
    covered, filled with zeros / noise, or copied from `source` at the same place. Returns
    (corrupted, mask [1, H, W])."""
    c, h, w = image.shape
    align = max(1, align)
    target = rng.uniform(min(0.5, ratio), ratio) * h * w
    max_h, max_w = max(int(max_block * h), align + 1), max(int(max_block * w), align + 1)
    out, mask = image.clone(), torch.zeros(1, h, w)
    while mask.sum() < target:
        r0 = rng.integers(0, max(h - align, 1)) // align * align
        c0 = rng.integers(0, max(w - align, 1)) // align * align
        bh = round(min(rng.integers(align, max_h), h - r0) / align) * align
        bw = round(min(rng.integers(align, max_w), w - c0) / align) * align
        if source is not None:
            out[:, r0 : r0 + bh, c0 : c0 + bw] = source[:, r0 : r0 + bh, c0 : c0 + bw]
        elif fill == "noise":
            out[:, r0 : r0 + bh, c0 : c0 + bw] = torch.from_numpy(rng.standard_normal((c, bh, bw)).astype(np.float32))
        elif fill == "zeros":
            out[:, r0 : r0 + bh, c0 : c0 + bw] = 0
        else:  # "shuffle": another block of the same size from the same (clean) image
            r1, c1 = rng.integers(0, h - bh + 1), rng.integers(0, w - bw + 1)
            out[:, r0 : r0 + bh, c0 : c0 + bw] = image[:, r1 : r1 + bh, c1 : c1 + bw]
        mask[:, r0 : r0 + bh, c0 : c0 + bw] = 1
    return out, mask


def corrupt(rng, views, args):
    """Both views of a batch (§3.2, §3.3): GMML blocks, and with probability ½ per image and view
    blocks pasted from another image of the batch instead (when drop_replace > 0)."""
    corrupted, masks = [], []
    for view in views:
        outs, ms = [], []
        for i in range(view.shape[0]):
            if args["drop_replace"] > 0 and rng.random() < 0.5:
                j = rng.integers(0, view.shape[0])
                o, m = gmml_blocks(rng, view[i], args["drop_replace"], args["drop_align"], source=view[j])
            else:
                o, m = gmml_blocks(rng, view[i], args["drop_perc"], args["drop_align"], fill=args["drop_type"])
            outs.append(o)
            ms.append(m)
        corrupted.append(torch.stack(outs))
        masks.append(torch.stack(ms))
    return corrupted, masks
