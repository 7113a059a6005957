#!/usr/bin/env bash
# SiT.js GPU bench, self-contained (made by tools/bench/gpu/pack.sh; no Node, no network needed).
# Stages, each under its own timeout, the run goes on when one fails:
#   kernels      check-kernels: every registered webgpu kernel override vs the portable ops
#   gemm         gemm-webgpu: TFLOP/s of the step's GEMM shapes, fused WGSL vs tfjs matMul vs PyTorch,
#                and (unless --no-f16) the f16 GEMM vs PyTorch fp16 (the adapter needs shader-f16)
#   torch_tiny   PyTorch CUDA fp32 SiT step, ViT-Tiny/4 32 px      torch_small  ViT-S/16 224 px
#   tfjs_tiny    tfjs webgpu SiT step, ViT-Tiny/4 32 px            tfjs_small   ViT-S/16 224 px
#   replay_tiny  step-replay: the tiny step's host part against a raw replay of its WebGPU calls
#   memory       tfjs webgpu, N steps: tensors and GPU bytes after step 10 and step N
# then prints the summary (also appended to log.txt). Files go to $OUT if set (else a folder it
# names), ≤ 8 files.
# Usage: bash run.sh [--warmup 2] [--iters 5] [--tiny-batch 256] [--small-batch 64]
#   [--memory-steps 30] [--memory-batch 64] [--budget 420] [--depth N] [--quick]
#   [--allow-software-adapter] [--no-f16] [--step-precision f32|mixed-f16]
#   --step-precision mixed-f16: the tfjs SiT step stages train in mixed precision (f16 GEMMs, loss
#     scaling; the adapter needs shader-f16); PyTorch's stays fp32 (the issue's f16 target is
#     ≤ 0.6× PyTorch fp32). A second run of the pack, for the f16 step times.
#   --f16-steps: after the f32 step stages, the same two steps again in mixed-f16
#     (tfjs_tiny_f16, tfjs_small_f16): f32 and f16 step times from one run of the pack.
#   --budget: seconds for the whole run (stage timeouts are shares of it).
#   --late-read-steps: after the f32 step stages, the same two steps as fit runs them (--late-read:
#     step k's loss read while step k+1 is encoded), tfjs_tiny_late and tfjs_small_late.
#   --stages a,b,...: run only these stages (names as in the list above; the summary always runs).
#   --quick: a smoke run (batch 2/1, depth 2, warmup 0, iters 1, 12 memory steps, kernel check B 2).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WARMUP=2 ITERS=5 TINY_B=256 SMALL_B=64 MEM_STEPS=30 MEM_B=64 BUDGET=420 DEPTH="" SOFT="" KB=8
GEMM_ARGS="--iters 5 --reps 10" GEMM_PRECISION="--precision mixed-f16" STEP_PRECISION=f32 F16_STEPS="" STAGES="" LATE_STEPS=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --warmup) WARMUP=$2; shift ;;
    --iters) ITERS=$2; shift ;;
    --tiny-batch) TINY_B=$2; shift ;;
    --small-batch) SMALL_B=$2; shift ;;
    --memory-steps) MEM_STEPS=$2; shift ;;
    --memory-batch) MEM_B=$2; shift ;;
    --budget) BUDGET=$2; shift ;;
    --depth) DEPTH=$2; shift ;;
    --quick) WARMUP=0 ITERS=1 TINY_B=2 SMALL_B=1 MEM_STEPS=12 MEM_B=2 DEPTH=2 KB=2
      GEMM_ARGS="--batch 2 --iters 1 --reps 1" ;;
    --allow-software-adapter) SOFT=--allow-software-adapter ;;
    --no-f16) GEMM_PRECISION="" ;;
    --step-precision) STEP_PRECISION=$2; shift ;;
    --f16-steps) F16_STEPS=1 ;;
    --stages) STAGES=",$2,"; shift ;;
    --late-read-steps) LATE_STEPS=1 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
START=$(date +%s)
WORK=$(mktemp -d /tmp/sit-bench-gpu.XXXXXX)
# Stage files are written to $WORK/results; with $OUT set, results.tar (all of them, refreshed after
# every stage, so a run cut short still brings back what it finished) and log.txt go to $OUT: a
# device run brings back at most 8 files, fewer than the stages.
RES=$WORK/results
mkdir -p "$RES"
LOG=$RES/log.txt
: >"$LOG"
say() { echo "[run.sh] $*" | tee -a "$LOG" >&2; }

unxz_to() { # unxz_to <file.xz> <dest>: xz if present, else python3's lzma
  if command -v xz >/dev/null; then xz -dc "$1" >"$2"
  else python3 -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2],"wb"))' "$1" "$2"
  fi
}
say "unpacking into $WORK"
unxz_to "$HERE/node.xz" "$WORK/node" && chmod +x "$WORK/node"
cp -r "$HERE/app" "$WORK/app"
unxz_to "$HERE/app/dist/linux-x64.dawn.node.xz" "$WORK/app/dist/linux-x64.dawn.node"
rm -f "$WORK/app/dist/linux-x64.dawn.node.xz"
NODE=$WORK/node
say "node $("$NODE" --version 2>&1); $(cat "$HERE/VERSION" 2>/dev/null | tr '\n' ';')"

# Vulkan: the system loader if there is one, else the packed one; NVIDIA's ICD when present.
# The packed GLVND libraries go last on the path: used only where the system has none (NVIDIA's
# ICD, libGLX_nvidia, fails to load without libGLdispatch/libGLX).
if /sbin/ldconfig -p 2>/dev/null | grep 'libvulkan.so.1 ' >/dev/null; then  # no -q: SIGPIPE + pipefail
  say "Vulkan loader: system"
  export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$HERE/lib
else
  export LD_LIBRARY_PATH=$HERE/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  say "Vulkan loader: packed ($HERE/lib/libvulkan.so.1)"
fi
ICD=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
EGL=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
if [[ -z "${VK_DRIVER_FILES:-}" && -f $ICD ]]; then export VK_DRIVER_FILES=$ICD; fi
if [[ -z "${__EGL_VENDOR_LIBRARY_FILENAMES:-}" && -f $EGL ]]; then export __EGL_VENDOR_LIBRARY_FILENAMES=$EGL; fi
say "VK_DRIVER_FILES=${VK_DRIVER_FILES:-<default>}"
if command -v nvidia-smi >/dev/null; then nvidia-smi -L 2>&1 | tee -a "$LOG" >&2
else say "nvidia-smi: not found"; fi
PY=${SIT_TORCH_PYTHON:-python3}
# gemm-webgpu.ts starts PyTorch itself: the same python as the step stages (else it would take
# /usr/bin/python3, which on the GPU machine has no torch).
export SIT_TORCH_PYTHON=$PY

# stage <name> <share of the budget, %> <command...>: stdout → $RES/<name>.json, stderr → log.
stage() {
  local name=$1 share=$2; shift 2
  if [[ -n $STAGES && $STAGES != *",$name,"* ]]; then return; fi
  local left=$((BUDGET - ($(date +%s) - START) - 10))
  local limit=$((BUDGET * share / 100))
  ((limit > left)) && limit=$left
  if ((limit < 5)); then
    say "$name: skipped (time budget spent)"
    echo '{"error": "skipped: time budget spent"}' >"$RES/$name.json"
    return
  fi
  say "$name: start (timeout ${limit}s): $*"
  local t0=$(date +%s)
  (cd "$WORK/app" && timeout -k 10 "$limit" "$@") >"$RES/$name.json" 2> >(grep -v '^Warning: max' >>"$LOG")
  local rc=$?
  say "$name: rc $rc in $(($(date +%s) - t0))s$( ((rc == 124 || rc == 137)) && echo ' (timed out)')"
  publish
}
publish() { [[ -n "${OUT:-}" ]] && tar -C "$RES" -cf "$OUT/results.tar" . && cp "$LOG" "$OUT/log.txt"; }
D=${DEPTH:+--depth $DEPTH}
STEP="$NODE sit_step.mjs --backend webgpu $SOFT --no-torch --warmup $WARMUP --iters $ITERS $D --precision $STEP_PRECISION"
TORCH="$PY sit_step_torch.py --device cuda --warmup $WARMUP --iters $ITERS $D"
# The step times first (the issue's targets), then the f16 steps, the GEMM table, the kernel check
# and the long no-growth run.
stage torch_tiny 7 $TORCH --model tiny --batch "$TINY_B"
stage torch_small 7 $TORCH --model small --batch "$SMALL_B"
# After the timed steps, one more step with each dispatch in a timestamped pass of its own: GPU
# time per shader (gpu_profile; Dawn's timestamp quantisation off for it).
PROFILED="env SIT_DAWN_TOGGLES=-timestamp_quantization $STEP --gpu-profile"
stage tfjs_tiny 15 $PROFILED --model tiny --batch "$TINY_B"
stage tfjs_small 15 $PROFILED --model small --batch "$SMALL_B"
if [[ -n $LATE_STEPS ]]; then
  stage tfjs_tiny_late 10 $STEP --model tiny --batch "$TINY_B" --late-read
  stage tfjs_small_late 10 $STEP --model small --batch "$SMALL_B" --late-read
fi
# The host-time floor: the tiny step against a raw replay of its recorded WebGPU calls
# (step-replay.ts: main-thread CPU of each, alternating in one process).
stage replay_tiny 6 $NODE step-replay.mjs $SOFT --img 32 --batch "$TINY_B" \
  --warmup $((WARMUP > 0 ? WARMUP : 1)) --steps $((ITERS > 1 ? ITERS : 2))
# The same tiny step without split-K weight gradients (gemm-split.ts), for the before/after ratio.
stage tfjs_tiny_nosplit 8 $STEP --model tiny --batch "$TINY_B" --split-k off
# Dawn offers shader-f16 on NVIDIA's Vulkan driver only with this toggle (none without it on the
# H200, 2026-12-04); the stages that use f16 set it, the f32 stages run as a user's default would.
F16ENV="env SIT_DAWN_TOGGLES=vulkan_enable_f16_on_nvidia"
if [[ -n $F16_STEPS ]]; then
  F16="$F16ENV $NODE sit_step.mjs --backend webgpu $SOFT --no-torch --warmup $WARMUP --iters $ITERS $D --precision mixed-f16"
  stage tfjs_tiny_f16 12 $F16 --model tiny --batch "$TINY_B"
  stage tfjs_small_f16 12 $F16 --model small --batch "$SMALL_B"
fi
stage gemm 15 $F16ENV $NODE gemm-webgpu.mjs $SOFT --model both $GEMM_ARGS $GEMM_PRECISION
stage kernels 15 $NODE check-kernels.mjs --backend webgpu $SOFT --batch $KB
stage memory 30 $NODE sit_step.mjs --backend webgpu $SOFT --no-torch --model tiny \
  --batch "$MEM_B" --memory-steps "$MEM_STEPS" $D
# The summary goes to stdout and log.txt (summary.py recomputes it from results.tar anywhere).
"$PY" "$WORK/app/summary.py" "$RES" 2>>"$LOG" | tee -a "$LOG"
say "done in $(($(date +%s) - START))s; files in $RES: $(ls "$RES" | tr '\n' ' ')"
publish
rm -rf "$WORK/node" "$WORK/app"
