#!/usr/bin/env python3
"""Pack a sit-torch folder (`sit export --format sit-torch`) into the SiT code's checkpoint.pth.

    python3 tools/scale-out/to_torch.py SIT_TORCH_FOLDER OUTPUT_DIR/checkpoint.pth [--world-size N] [--official]

The file holds what the SiT code's main.py saves and resumes from (`student`, `teacher`: DDP
state dicts; `optimizer`: AdamW's state_dict with the "regularized" / "not regularized" groups;
`epoch`; `args`) plus `sit_torch`, SiT.js's own record (step, config, generators), which main.py
ignores and train_ddp.py / from_torch.py use. Every key, shape and the optimizer structure are
checked against the SiT code's layout (main.py loads with strict=False and would not notice).
`args` is a plain dict, so the file loads with torch.load(weights_only=True) too.
--world-size N splits the total batch into the per-process `batch_size`; --official fails when
the run has settings main.py cannot represent (then use train_ddp.py).
"""
import argparse
import sys

import torch

from sit_files import FormatError, read_sit_torch, torch_save_atomic
from sit_layout import LayoutError, Wrapped, build, check_optimizer, check_state_dict, params_groups


def adamw_state_dict(model, tensors, doc):
    """Build optimizer.state_dict() through a real torch AdamW (so the group keys are those of the
    installed PyTorch), loading our moments, step and group settings into it."""
    regularized, plain = params_groups(model)
    names = [n for n, _ in regularized + plain]
    if names != doc["param_names"]:
        first = next(i for i, (a, b) in enumerate(zip(names + [None], doc["param_names"] + [None])) if a != b)
        raise LayoutError(f"optimizer parameter {first}: the SiT code numbers {names[first] if first < len(names) else None!r}, the export {doc['param_names'][first] if first < len(doc['param_names']) else None!r}")
    optimizer = torch.optim.AdamW([{"params": [p for _, p in regularized]}, {"params": [p for _, p in plain], "weight_decay": 0.0}])
    target = optimizer.state_dict()
    for group, ours in zip(target["param_groups"], doc["optimizer"]["param_groups"]):
        if list(group["params"]) != list(ours["params"]):
            raise LayoutError(f"optimizer param_groups: indices {ours['params']} where PyTorch numbers {group['params']}")
        for key in ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize"):
            group[key] = tuple(ours[key]) if key == "betas" else ours[key]
    state = {}
    for index, entry in doc["optimizer"]["state"].items():
        state[int(index)] = {
            # PyTorch ≥ 1.12 keeps AdamW's step as a float tensor per parameter.
            "step": torch.tensor(float(entry["step"])),
            "exp_avg": tensors.pop(f"optimizer.state.{index}.exp_avg"),
            "exp_avg_sq": tensors.pop(f"optimizer.state.{index}.exp_avg_sq"),
        }
    target["state"] = state
    optimizer.load_state_dict(target)
    result = optimizer.state_dict()
    check_optimizer(model, result)
    return result


def pack(folder, world_size=None, official=False):
    """The checkpoint.pth dict of a sit-torch folder (checked), and the notes to print."""
    tensors, doc = read_sit_torch(folder)
    arch, args = doc["architecture"], dict(doc["args"])
    model = build(arch, args["out_dim"])
    nets = {}
    for who in ("student", "teacher"):
        prefix = f"{who}."
        sd = {k[len(prefix) :]: tensors.pop(k) for k in list(tensors) if k.startswith(prefix)}
        # BatchNorm counts batches in int64 in PyTorch; SiT.js stores int32.
        sd = {k: v.long() if k.endswith("num_batches_tracked") else v for k, v in sd.items()}
        check_state_dict(model, sd, who)
        nets[who] = sd
    Wrapped(model).load_state_dict(nets["student"], strict=True)
    optimizer = adamw_state_dict(model, tensors, doc)
    if tensors:
        raise LayoutError(f"unexpected tensors {sorted(tensors)}")
    notes = list(doc.get("official_differences", []))
    if world_size is not None:
        total = args["batch_size"] * args.get("world_size", 1)
        if total % world_size:
            raise LayoutError(f"--world-size {world_size} does not divide the batch of {total} images")
        args["batch_size"], args["world_size"] = total // world_size, world_size
    if doc["step_in_epoch"]:
        notes.append(f"step {doc['step']} is {doc['step_in_epoch']} batches into epoch {doc['epoch']}: main.py resumes at that epoch's start (train_ddp.py at the step)")
    if official and doc.get("official_differences"):
        raise LayoutError("--official: main.py cannot run this state as it is: " + "; ".join(doc["official_differences"]))
    record = {k: doc[k] for k in ("step", "epoch", "step_in_epoch", "steps_per_epoch", "architecture", "official_differences")}
    record["sitjs"] = doc.get("sitjs")
    ckpt = {
        "student": nets["student"],
        "teacher": nets["teacher"],
        "optimizer": optimizer,
        "epoch": doc["epoch"],
        "args": args,
        "sit_torch": record,
    }
    return ckpt, notes


# The SiT code's main.py options that shape training (it re-reads them from its command line,
# not from the checkpoint): pass these so that it continues this run.
MAIN_PY_FLAGS = ("model", "drop_path_rate", "out_dim", "simclr_temp", "momentum_teacher", "drop_perc",
                 "drop_replace", "drop_align", "drop_type", "lmbda", "weight_decay", "weight_decay_end",
                 "clip_grad", "batch_size", "epochs", "lr", "warmup_epochs", "min_lr", "seed", "use_fp16")


def main_py_flags(args):
    return " ".join(f"--{k} {str(args[k]).lower() if isinstance(args[k], bool) else args[k]}" for k in MAIN_PY_FLAGS if k in args)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", help="sit-torch folder (state.json + state.safetensors)")
    parser.add_argument("output", help="checkpoint.pth to write (main.py resumes from OUTPUT_DIR/checkpoint.pth)")
    parser.add_argument("--world-size", type=int, help="processes the batch is split over (args.batch_size is per process)")
    parser.add_argument("--official", action="store_true", help="fail on settings main.py cannot represent")
    o = parser.parse_args(argv)
    try:
        ckpt, notes = pack(o.folder, o.world_size, o.official)
    except (FormatError, LayoutError, KeyError) as err:
        print(f"to_torch.py: {err}", file=sys.stderr)
        return 1
    for n in notes:
        print(f"note: {n}", file=sys.stderr)
    torch_save_atomic(ckpt, o.output)
    print(f"wrote {o.output}: step {ckpt['sit_torch']['step']}, epoch {ckpt['epoch']}, "
          f"{len(ckpt['optimizer']['state'])} parameters with AdamW state")
    print("main.py flags of this run: " + main_py_flags(ckpt["args"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
