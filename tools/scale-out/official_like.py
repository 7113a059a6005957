#!/usr/bin/env python3
"""Test fixture: a checkpoint.pth as the SiT code's main.py saves it, without SiT.js's record.

    python3 official_like.py OUT/checkpoint.pth OUT/expected.safetensors

vit_tiny (patch 16) at 32 px with a 64-wide projection head, two SiT steps on random images at
batch 4 (2 steps per epoch, so epoch 1), `args` as an argparse.Namespace of main.py's names,
DDP `module.` keys and an fp16_scaler entry. expected.safetensors holds the student's and the
teacher's state under their checkpoint keys, for the test to compare after `sit import`.
"""
import argparse
import sys

import torch

import sit_step
from sit_files import serialize_safetensors, torch_save_atomic, write_atomic
from sit_layout import build, params_groups

ARCH = {"img_size": 32, "patch_size": 16, "in_chans": 3, "embed_dim": 192, "depth": 12,
        "num_heads": 3, "mlp_ratio": 4.0, "head_hidden_dim": 64}


def main():
    out, expected = sys.argv[1:3]
    torch.manual_seed(0)
    args = argparse.Namespace(
        drop_perc=0.5, drop_replace=0.3, drop_align=1, drop_type="zeros", lmbda=1, out_dim=16,
        simclr_temp=0.2, momentum_teacher=0.996, model="vit_tiny", drop_path_rate=0.1,
        use_fp16=True, weight_decay=0.04, weight_decay_end=0.1, clip_grad=3.0, batch_size=4,
        epochs=10, lr=0.0005, warmup_epochs=1, min_lr=1e-6, data_set="Pets",
        data_location="/data/pets", output_dir="checkpoints/vit_tiny/trial", saveckp_freq=20,
        seed=0, num_workers=10, dist_url="env://", local_rank=0, world_size=1, rank=0, gpu=0,
    )
    student, teacher = build(ARCH, 16, 0.1), build(ARCH, 16)
    teacher.load_state_dict(student.state_dict())
    for p in teacher.parameters():
        p.requires_grad = False
    regularized, plain = params_groups(student)
    optimizer = torch.optim.AdamW([{"params": [p for _, p in regularized]}, {"params": [p for _, p in plain], "weight_decay": 0.0}])
    a = vars(args)
    lr, wd, m = sit_step.schedules(a, 2)
    for it in range(2):
        views = [torch.randn(4, 3, 32, 32) for _ in range(2)]
        masks = [(torch.rand(4, 1, 32, 32) < 0.5).float() for _ in range(2)]
        corrupted = [v * (1 - k) for v, k in zip(views, masks)]
        sit_step.step(student, teacher, optimizer, (views, corrupted, masks), a, (lr[it], wd[it], m[it]))
    ddp = lambda net: {f"module.{k}": v for k, v in net.state_dict().items()}  # noqa: E731
    torch_save_atomic({"student": ddp(student), "teacher": ddp(teacher), "optimizer": optimizer.state_dict(),
                       "epoch": 1, "args": args, "fp16_scaler": {"scale": 65536.0}}, out)
    tensors = {f"student.{k}": v for k, v in ddp(student).items()}
    tensors.update({f"teacher.{k}": v for k, v in ddp(teacher).items()})
    write_atomic(expected, serialize_safetensors(tensors))


if __name__ == "__main__":
    main()
