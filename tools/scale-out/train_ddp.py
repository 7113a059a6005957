#!/usr/bin/env python3
"""Continue a SiT run with PyTorch DistributedDataParallel: the SiT v3 step of sit_step.py on
N processes (gloo on CPU, nccl on GPUs), from and to a checkpoint.pth of to_torch.py's layout.

    torchrun --nproc_per_node=N tools/scale-out/train_ddp.py --checkpoint RUN/checkpoint.pth \
        --data images.npy [--steps K] [--out RUN/checkpoint.pth] [--log steps.jsonl]

--data: a .npy of uint8 images [N, H, W, C] at the run's input size (normalised with the run's
mean/std, ImageNet's when it recorded none); --synthetic N draws N random images instead (tests).
Views are horizontal flips of the stored images (the full SiT augmentations are the SiT code's
main.py's). It resumes at the checkpoint's exact step, with the schedules of its args, and saves
(rank 0, atomically) after --steps steps or at the end of the run.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn

import sit_step
from sit_files import torch_save_atomic
from sit_layout import Wrapped, build, check_optimizer, check_state_dict, params_groups

IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


def images_of(o, arch, seed):
    if o.synthetic:
        g = np.random.default_rng(seed)
        return g.integers(0, 256, (o.synthetic, arch["img_size"], arch["img_size"], arch["in_chans"]), dtype=np.uint8)
    data = np.load(o.data)
    want = (arch["img_size"], arch["img_size"], arch["in_chans"])
    if data.dtype != np.uint8 or data.ndim != 4 or tuple(data.shape[1:]) != want:
        raise SystemExit(f"--data {o.data}: expected uint8 images [N, {', '.join(map(str, want))}], got {data.dtype} {list(data.shape)}")
    return data


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--out", help="checkpoint.pth to write (default: --checkpoint)")
    p.add_argument("--data")
    p.add_argument("--synthetic", type=int)
    p.add_argument("--steps", type=int, help="steps to take (default: to the end of the run)")
    p.add_argument("--log", help="JSON lines of loss, lr, wd, momentum per step (rank 0)")
    o = p.parse_args()
    if bool(o.data) == bool(o.synthetic):
        raise SystemExit("give one of --data FILE.npy or --synthetic N")
    cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)

    ckpt = torch.load(o.checkpoint, map_location="cpu")
    record, args = ckpt["sit_torch"], dict(ckpt["args"])
    arch = record["architecture"]
    total_batch = args["batch_size"] * args.get("world_size", 1)
    if total_batch % world:
        raise SystemExit(f"{world} processes do not divide the batch of {total_batch} images")
    args["batch_size"], args["world_size"] = total_batch // world, world
    student = build(arch, args["out_dim"], args.get("drop_path_rate", 0.0))
    teacher = build(arch, args["out_dim"])
    for who, net in (("student", student), ("teacher", teacher)):
        check_state_dict(net, ckpt[who], who)
        Wrapped(net).load_state_dict(ckpt[who], strict=True)
    if cuda:  # SyncBatchNorm needs GPUs; on CPU each process normalises its own batch
        student, teacher = (nn.SyncBatchNorm.convert_sync_batchnorm(m) for m in (student, teacher))
    student, teacher = student.to(device), teacher.to(device)
    for q in teacher.parameters():
        q.requires_grad = False
    regularized, plain = params_groups(student)
    optimizer = torch.optim.AdamW([{"params": [q for _, q in regularized]}, {"params": [q for _, q in plain], "weight_decay": 0.0}])
    optimizer.load_state_dict(ckpt["optimizer"])
    _, start = check_optimizer(student, optimizer.state_dict())
    ddp = nn.parallel.DistributedDataParallel(student, device_ids=[device.index] if cuda else None)

    images = images_of(o, arch, args.get("seed", 0))
    per_epoch = record["steps_per_epoch"]
    if len(images) // total_batch != per_epoch:
        print(f"note: {len(images)} images give {len(images) // total_batch} steps per epoch, the run has {per_epoch}: the schedules follow the run", file=sys.stderr)
    lr, wd, m = sit_step.schedules(args, per_epoch)
    stats = (record.get("sitjs") or {}).get("cli", {}) or {}
    mean, std = (stats.get("stats") or {}).get("mean", IMAGENET[0]), (stats.get("stats") or {}).get("std", IMAGENET[1])
    chans = arch["in_chans"]
    mean = torch.tensor(mean[:chans]).view(1, chans, 1, 1)
    std = torch.tensor(std[:chans]).view(1, chans, 1, 1)
    end = len(lr) if o.steps is None else min(len(lr), start + o.steps)
    rng = np.random.default_rng([args.get("seed", 0), rank, start])
    log = open(o.log, "a") if (o.log and rank == 0) else None
    t0 = time.time()
    for it in range(start, end):
        epoch, k = divmod(it, per_epoch)
        order = np.random.default_rng([args.get("seed", 0), epoch]).permutation(len(images))
        lo = (k * world + rank) * args["batch_size"]
        batch = torch.from_numpy(images[order[lo : lo + args["batch_size"]]]).permute(0, 3, 1, 2).float() / 255
        batch = (batch - mean) / std
        views = [torch.where(torch.from_numpy(rng.random(len(batch)) < 0.5).view(-1, 1, 1, 1), batch.flip(3), batch) for _ in range(2)]
        corrupted, masks = sit_step.corrupt(rng, views, args)
        to = lambda xs: [x.to(device) for x in xs]  # noqa: E731
        losses = sit_step.step(ddp, teacher, optimizer, (to(views), to(corrupted), to(masks)), args, (lr[it], wd[it], m[it]))
        if log:
            log.write(json.dumps({"step": it, "loss": losses[0], "lr": lr[it], "wd": wd[it], "momentum": m[it], "world": world}) + "\n")
    if log:
        log.close()
    if rank == 0:
        record = {**record, "step": end, "epoch": end // per_epoch, "step_in_epoch": end % per_epoch}
        if record.get("sitjs"):
            progress = record["sitjs"]["progress"]
            record["sitjs"] = {**record["sitjs"], "progress": {**progress, "elapsedSec": progress["elapsedSec"] + time.time() - t0}}
        args["batch_size"], args["world_size"] = total_batch // world, world
        torch_save_atomic({
            "student": ddp.state_dict(),
            "teacher": {f"module.{k}": v for k, v in teacher.state_dict().items()},
            "optimizer": optimizer.state_dict(),
            "epoch": end // per_epoch,
            "args": args,
            "sit_torch": record,
        }, o.out or o.checkpoint)
        print(f"rank 0 of {world}: steps {start} → {end}, saved {o.out or o.checkpoint}")
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
