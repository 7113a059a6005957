#!/usr/bin/env python3
"""Turn a SiT checkpoint.pth (ours from to_torch.py / train_ddp.py, or the SiT code's own) back
into SiT.js: a sit-torch folder, and with --run a checkpoint in RUN/checkpoints (`sit import`).

    python3 tools/scale-out/from_torch.py checkpoint.pth SIT_TORCH_FOLDER [--run RUN] [--steps-per-epoch N]

Then `sit pretrain --out RUN --resume …` continues the run at its step with its schedules, and
`sit knn/linear/finetune --checkpoint RUN` evaluate its backbone. Every key and shape of the
student, the teacher and the optimizer is checked against the SiT code's layout.
The SiT code pickles `args` as an argparse.Namespace, so the file is loaded with
weights_only=False: convert only checkpoints you trust.
"""
import argparse
import os
import subprocess
import sys

import torch

from sit_files import FormatError, write_sit_torch
from sit_layout import LayoutError, architecture_of, build, check_optimizer, check_state_dict

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_CLI = os.path.join(HERE, "..", "..", "packages", "cli", "bin", "sit.js")


def load(path):
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except TypeError:  # PyTorch before weights_only existed
        return torch.load(path, map_location="cpu")


def plain(value):
    """JSON-safe `args` values (the Namespace may hold paths, tuples, None)."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return str(value)


def unpack(ckpt, steps_per_epoch=None):
    """(tensors, sit-torch JSON) of a checkpoint.pth dict, checked."""
    for key in ("student", "teacher", "optimizer", "epoch", "args"):
        if key not in ckpt:
            raise LayoutError(f"no {key!r} in the checkpoint (keys: {sorted(ckpt)})")
    args = ckpt["args"] if isinstance(ckpt["args"], dict) else vars(ckpt["args"])
    args = {k: plain(v) for k, v in args.items()}
    record = ckpt.get("sit_torch") or {}
    arch = record.get("architecture") or architecture_of(ckpt["student"], args)
    model = build(arch, args["out_dim"])
    for who in ("student", "teacher"):
        check_state_dict(model, ckpt[who], who)
    names, step = check_optimizer(model, ckpt["optimizer"])
    epoch = int(ckpt["epoch"])
    spe = steps_per_epoch or record.get("steps_per_epoch")
    if spe is None:
        if epoch <= 0 or step % epoch:
            raise LayoutError(f"steps per epoch unknown (step {step}, epoch {epoch}): pass --steps-per-epoch (len(data_loader))")
        spe = step // epoch  # the SiT code saves at epoch ends
    tensors = {}
    for who in ("student", "teacher"):
        for k, v in ckpt[who].items():
            tensors[f"{who}.{k}"] = v.detach().float() if v.is_floating_point() else v.detach().long()
    groups = []
    for g in ckpt["optimizer"]["param_groups"]:
        groups.append({
            "lr": float(g["lr"]), "betas": [float(b) for b in g["betas"]], "eps": float(g["eps"]),
            "weight_decay": float(g["weight_decay"]), "amsgrad": bool(g.get("amsgrad", False)),
            "maximize": bool(g.get("maximize", False)), "params": list(g["params"]),
        })
    state = {}
    for index, entry in ckpt["optimizer"]["state"].items():
        state[str(index)] = {"step": int(float(entry["step"]))}
        for m in ("exp_avg", "exp_avg_sq"):
            tensors[f"optimizer.state.{index}.{m}"] = entry[m].detach().float()
    doc = {
        "format": "sit-torch",
        "version": 1,
        "step": step,
        "epoch": step // spe,
        "step_in_epoch": step % spe,
        "steps_per_epoch": spe,
        "optimizer": {"state": state, "param_groups": groups},
        "param_group_names": ["regularized", "not regularized"],
        "param_names": names,
        "args": args,
        "architecture": arch,
        "official_differences": record.get("official_differences", []),
    }
    if record.get("sitjs"):
        doc["sitjs"] = record["sitjs"]
    if "fp16_scaler" in ckpt:
        print("note: fp16_scaler dropped (SiT.js trains in float32)", file=sys.stderr)
    return tensors, doc


def sit_command():
    """`sit`: the repository's CLI when run from a clone, else the one on PATH."""
    return ["node", REPO_CLI] if os.path.isfile(REPO_CLI) else ["sit"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", help="checkpoint.pth")
    parser.add_argument("folder", help="sit-torch folder to write")
    parser.add_argument("--run", help="also `sit import` it into this run folder (checkpoint in RUN/checkpoints)")
    parser.add_argument("--steps-per-epoch", type=int, help="len(data_loader) when the checkpoint does not record it")
    o = parser.parse_args(argv)
    try:
        tensors, doc = unpack(load(o.checkpoint), o.steps_per_epoch)
    except (FormatError, LayoutError, KeyError) as err:
        print(f"from_torch.py: {o.checkpoint}: {err}", file=sys.stderr)
        return 1
    write_sit_torch(o.folder, tensors, doc)
    print(f"wrote {o.folder}: step {doc['step']}, epoch {doc['epoch']}")
    if o.run:
        return subprocess.call(sit_command() + ["import", "--from", o.folder, "--out", o.run])
    return 0


if __name__ == "__main__":
    sys.exit(main())
