#!/usr/bin/env python3
"""One SiT step in PyTorch on inputs SiT.js drew, from a sit-torch export, for the parity test
(packages/cli/src/sit-torch-ddp.test.ts).

    python3 step_check.py SIT_TORCH_FOLDER INPUTS.safetensors HYPER_JSON OUT.safetensors

INPUTS: clean.{0,1}, corrupted.{0,1} ([B, H, W, C], SiT.js's NHWC) and mask.{0,1} ([B, H, W, 1]).
The state goes through to_torch.py's checks and into the layout of sit_layout.py with
strict=True; OUT holds the losses, the student's gradients before clipping (`grad.<key>`) and,
after the step, every student and teacher parameter under its checkpoint.pth key.
"""
import json
import sys

import torch

import sit_step
from sit_files import parse_safetensors, serialize_safetensors, write_atomic
from sit_layout import Wrapped, build, params_groups
from to_torch import pack


def main():
    folder, inputs_path, hyper_json, out = sys.argv[1:5]
    ckpt, _ = pack(folder)
    arch, args = ckpt["sit_torch"]["architecture"], ckpt["args"]
    student, teacher = build(arch, args["out_dim"]), build(arch, args["out_dim"])
    Wrapped(student).load_state_dict(ckpt["student"], strict=True)
    Wrapped(teacher).load_state_dict(ckpt["teacher"], strict=True)
    for p in teacher.parameters():
        p.requires_grad = False
    regularized, plain = params_groups(student)
    optimizer = torch.optim.AdamW([{"params": [p for _, p in regularized]}, {"params": [p for _, p in plain], "weight_decay": 0.0}])
    optimizer.load_state_dict(ckpt["optimizer"])
    raw, _ = parse_safetensors(open(inputs_path, "rb").read(), inputs_path)
    nchw = lambda k: [raw[f"{k}.{i}"].permute(0, 3, 1, 2).contiguous() for i in (0, 1)]  # noqa: E731
    hyper = json.loads(hyper_json)
    result = {}

    def record(model):
        for name, p in model.named_parameters():
            result[f"grad.module.{name}"] = p.grad.detach().clone()

    hyper = (hyper["lr"], hyper["wd"], hyper["momentum"])
    losses = sit_step.step(student, teacher, optimizer, (nchw("clean"), nchw("corrupted"), nchw("mask")), args, hyper, record)
    result["losses"] = torch.tensor(losses, dtype=torch.float64)
    for who, net in (("student", student), ("teacher", teacher)):
        for name, p in net.named_parameters():
            result[f"{who}.module.{name}"] = p.detach()
    write_atomic(out, serialize_safetensors(result))


if __name__ == "__main__":
    main()
