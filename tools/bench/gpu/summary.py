#!/usr/bin/env python3
"""Summary of a bench-gpu run: reads the stage JSON files in a folder, prints one JSON object.

Usage: python3 summary.py <dir>   (files: kernels.json, gemm.json, tfjs_tiny.json, tfjs_small.json,
torch_tiny.json, torch_small.json, memory.json, and with run.sh --f16-steps tfjs_tiny_f16.json and
tfjs_small_f16.json; a missing or broken one is reported as such).
Ratios are tfjs / PyTorch (step time, and peak GPU memory: tfjs's buffer pool high-water mark
over torch.cuda.max_memory_allocated).
"""
import json
import os
import sys


def load(d, name):
    path = os.path.join(d, name)
    try:
        with open(path) as f:
            text = f.read()
        # The JSON is the stage's stdout; take the outermost object.
        return json.loads(text[text.index("{"): text.rindex("}") + 1])
    except FileNotFoundError:
        return {"error": f"{name} missing (stage did not run)"}
    except (ValueError, json.JSONDecodeError):
        return {"error": f"{name} has no JSON (stage failed or timed out; see log.txt)"}


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "."
    out = {"summary": "sit_step on webgpu (tfjs) vs PyTorch fp32"}
    k = load(d, "kernels.json")
    out["adapter"] = k.get("adapter")
    out["kernels"] = {key: k.get(key) for key in ("checked", "all_pass", "registered", "error", "note")
                      if k.get(key) is not None}
    if k.get("results"):
        out["kernels"]["worst"] = {
            f"{r.get('kernel')}@{r.get('size')}":
                r.get("error") or max([r.get("forward_rel", 0)] + r.get("grad_rel", []))
            for r in k["results"]}
    for model in ("tiny", "small"):
        t = load(d, f"tfjs_{model}.json")
        p = load(d, f"torch_{model}.json")
        tj = t.get("tfjs", {}) if "error" not in t else t
        row = {
            "batch": t.get("batch"),
            "tfjs_step_ms": tj.get("step_ms"),
            "tfjs_images_per_s": tj.get("images_per_s"),
            "kernel_launches_per_step": tj.get("kernel_launches_per_step"),
            "tfjs_peak_gpu_bytes": tj.get("peak_gpu_allocated_bytes"),
            # Live buffers at their highest (sit_step's peak_gpu_in_use_bytes), vs the pool above.
            "tfjs_peak_gpu_in_use_bytes": tj.get("peak_gpu_in_use_bytes"),
            "torch_max_memory_reserved_bytes": p.get("max_memory_reserved_bytes"),
            "tfjs_error": tj.get("error"),
            "torch_step_ms": p.get("step_ms"),
            "torch_max_memory_allocated_bytes": p.get("max_memory_allocated_bytes"),
            "torch_note": p.get("note") or p.get("error"),
            "torch_gpu": p.get("gpu"),
        }
        if isinstance(row["tfjs_step_ms"], (int, float)) and isinstance(row["torch_step_ms"], (int, float)):
            row["ratio_step_time"] = round(row["tfjs_step_ms"] / row["torch_step_ms"], 2)
        f = load(d, f"tfjs_{model}_f16.json")  # run.sh --f16-steps
        if not f.get("error", "").endswith("(stage did not run)"):
            fj = f.get("tfjs", {}) if "error" not in f else f
            row["f16_step_ms"] = fj.get("step_ms")
            row["f16_error"] = fj.get("error")
            if isinstance(row["f16_step_ms"], (int, float)) and isinstance(row["torch_step_ms"], (int, float)):
                # The f16 target is against PyTorch fp32 (≤ 0.6).
                row["ratio_f16_step_over_torch_fp32"] = round(row["f16_step_ms"] / row["torch_step_ms"], 2)
        gp = tj.get("gpu_profile") or t.get("gpu_profile")  # sit_step --gpu-profile
        if gp:
            row["gpu_profile"] = {k: gp.get(k) for k in ("available", "reason", "sum_ms", "step_ms",
                                                          "dispatches_timed", "untimed",
                                                          "timer_granularity_ns") if k in gp}
            # The ten shader keys with the most GPU time: where the step's GPU time goes.
            row["gpu_profile"]["top"] = [
                {k: e.get(k) for k in ("key", "count", "total_ms", "share", "workgroups")}
                for e in (gp.get("top") or [])[:10]]
        if row["tfjs_peak_gpu_bytes"] and row["torch_max_memory_allocated_bytes"]:
            row["ratio_peak_memory"] = round(row["tfjs_peak_gpu_bytes"] / row["torch_max_memory_allocated_bytes"], 2)
        if row["tfjs_peak_gpu_in_use_bytes"] and row["torch_max_memory_allocated_bytes"]:
            row["ratio_peak_in_use_memory"] = round(
                row["tfjs_peak_gpu_in_use_bytes"] / row["torch_max_memory_allocated_bytes"], 2)
        out[model] = {key: v for key, v in row.items() if v is not None}
    ns = load(d, "tfjs_tiny_nosplit.json")  # run.sh: the tiny step with --split-k off
    if "error" not in ns and isinstance(out.get("tiny", {}).get("tfjs_step_ms"), (int, float)):
        nsj = ns.get("tfjs", {})
        out["tiny"]["nosplit_step_ms"] = nsj.get("step_ms")
        if isinstance(nsj.get("step_ms"), (int, float)):
            out["tiny"]["split_speedup"] = round(nsj["step_ms"] / out["tiny"]["tfjs_step_ms"], 2)
    m = load(d, "memory.json")
    mj = m.get("tfjs", m)
    out["memory"] = {key: mj.get(key) for key in
                     ("memory_steps", "tensor_growth", "gpu_allocated_growth", "no_growth", "error")
                     if mj.get(key) is not None}
    g = load(d, "gemm.json")
    if "error" in g:
        out["gemm"] = g
    else:
        rows = g.get("shapes", [])
        out["gemm"] = {
            "sum_ms": g.get("sum_ms"),
            # Fused / PyTorch time per shape (> 1: slower than PyTorch).
            "fused_over_torch_time": {r["shape"]: round(r["fused_ms"] / r["torch_ms"], 2)
                                      for r in rows if r.get("torch_ms")},
            "fused_tflops": {r["shape"]: r.get("fused_tflops") for r in rows},
            "torch": {k: v for k, v in (g.get("torch") or {}).items() if k not in ("ms", "fp16_ms")},
        }
        if any("f16_ms" in r for r in rows):  # gemm-webgpu --precision mixed-f16
            out["gemm"]["f16_tflops"] = {r["shape"]: r.get("f16_tflops") for r in rows}
            # f16 GEMM / PyTorch fp16 matmul time per shape, and its error vs the f32 GEMM.
            out["gemm"]["f16_over_torch_fp16_time"] = {
                r["shape"]: round(r["f16_ms"] / r["torch_fp16_ms"], 2) for r in rows if r.get("torch_fp16_ms")}
            out["gemm"]["f16_max_err_over_scale"] = max(r.get("f16_max_err_over_scale", 0) for r in rows)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
