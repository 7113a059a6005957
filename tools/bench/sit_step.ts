// One SiT (v3) training step — GMML corruption of both views, student on the corrupted views,
// EMA teacher on the clean views, contrastive + λ·masked-L1 loss, per-tensor clipping, AdamW, EMA
// update — through @sit/recipes' `createSiT(...).trainStep`, beside the same step in PyTorch
// (tools/bench/sit_step_torch.py) measured in the same run. Models: `tiny` = ViT-Tiny/4 at 32 px
// (D 192, depth 12, 3 heads; batch 64, 256 on webgpu), `small` = ViT-S/16 at 224 px (D 384, depth
// 12, 6 heads; batch 64); projection head hidden 4096 → 256, reconstruction head, λ = 5. Prints
// one JSON object on stdout (progress on stderr): step ms and images/s, the GMML drawing's share,
// tfjs kernel launches per step (tf.profile), GPU dispatches and host_ms per step (webgpu: until
// the step's last submit returns, GPU waits excluded), peak memory (tfjs bytes; on webgpu the GPU buffer
// pool), the adapter, and the ratio tfjs / PyTorch.
//
//   npx tsx tools/bench/sit_step.ts [--backend wasm|cpu|webgpu] [--model tiny|small] [--batch N]
//     [--iters 3] [--warmup 1] [--depth N] [--allow-software-adapter] [--memory-steps N]
//     [--no-torch] [--torch-device cpu|cuda] [--torch-iters 3] [--torch-warmup 1]
//     [--checkpoint-blocks on|off|k] (k: recompute only the first k blocks) [--fused-block on|off]
//     [--precision f32|mixed-f16] (mixed-f16: f16 GEMMs + loss scaling; webgpu with shader-f16)
//     [--late-read] [--loss-scaler device|host] [--split-k auto|off] [--gpu-profile]
//     [--torch-memory] [--img N] [--pin-main-thread] [--capture on|off]
//
// --capture (webgpu; default on): the recipe's captured steps (@sit/recipes' captured-steps.ts):
// after two recorded steps every step replays the second's WebGPU calls, so the timed steps and
// the tf.profile step are replays (no tfjs kernel calls; their dispatches counted as the
// capture makes them). `step_capture` reports its replays and any refusal. Off: every step runs
// through tfjs as before.
// --pin-main-thread (Linux, a CPU driver such as lavapipe): after the warm-up, the main thread on
// CPU 0 and every other thread on CPU 1 (taskset), so the driver's threads cannot take the main
// thread's core and host_ms counts no wait for one (host_runqueue_wait_ms shows it), as beside a GPU.
//
// --split-k off keeps every webgpu GEMM in one slice of K (no split-K weight gradients,
// gemm-split.ts), for before/after runs in one tree.
// --fused-block off makes webgpu compose each transformer block from separate kernels (the
// portable block) instead of the fused one-kernel-per-direction block (for before/after runs).
// --late-read runs the steps as fit runs them on webgpu (@sit/train's StepRunner): step k's losses
// are read while step k + 1 is launched (`launchStep`), so a step's read_wait_ms is the wait for the
// previous step's losses, and host_ms / host_cpu_ms run from the step's start until the submit
// that starts its loss read returns (the step's last submit). Without it each step is
// `trainStep`: launched, then its own losses awaited.
// --loss-scaler host keeps mixed-f16's loss scaler on the host path (tfjs ops unscale and check
// every gradient, then its found-inf flag is read before AdamW) even where the flat AdamW could
// do it on the device (the default, `device`): for before/after runs in one tree.
// --gpu-profile (webgpu): after the timed steps (and the tf.profile step), one more step runs with
// every dispatch in a compute pass of its own with GPU timestamps (packages/kernels/src/webgpu/
// gpu-profile.ts, the device feature timestamp-query): `gpu_profile` gives the GPU time per shader
// key (count, total, mean, share; all keys if ≤ 40, else the top 40 and the rest summed), the
// same per key and workgroup count (a GEMM key's shapes), their sum, and that step's wall time
// (longer than the others': one pass per dispatch). The timed steps are unaffected.
// --torch-memory (with --torch-device cpu): PyTorch reports its step's peak tensor bytes on the
// CPU (sit_step_torch.py --cpu-memory) instead of its step time, and the report compares tfjs's
// peak in use with it (ratio_peak_in_use_memory): a memory comparison with no GPU. (ViT-Tiny/4 at
// batch 256: 6.00 GB on the CPU, torch 1.13; max_memory_allocated 6.12 GB on an H200, torch 2.x,
// results/h200-2026-12-04.)
// --memory-steps N replaces the timing: it runs N steps and reports the tensor count and the GPU
// buffer bytes after step min(10, N) and after step N (the no-growth check), and the pool's peak
// in use in the last step (with --torch-memory, beside PyTorch's peak over a step after a warm-up
// step: three steps reach the steady state; the first three steps' and all steps' beside it).
// --depth overrides the model's depth and --img its image size (for quick smoke runs and long no-growth runs only). PyTorch runs with $SIT_TORCH_PYTHON, else
// /usr/bin/python3 (else python3 on PATH); --torch-device defaults to cuda on webgpu, else cpu.
// wasm: blocks are recomputed in the backward pass by default (`checkpointBlocks`, design.md);
// cpu is ≈ 1 GFLOP/s (one step takes minutes): use --iters 1 --warmup 0 there.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import * as tf from "@tensorflow/tfjs";
import { type BackendName, Rng } from "../../packages/core/src/index";
import { initBackend } from "../../packages/core/src/node";
import { corruptViews } from "../../packages/gmml/src/index";
import {
  type Precision,
  setWebgpuFusedBlock,
  settleBufferPool,
} from "../../packages/kernels/src/index";
import { setGemmSplitK } from "../../packages/kernels/src/webgpu/gemm-split";
import { rawDispatchCount } from "../../packages/kernels/src/webgpu/flat-buffers";
import {
  type GpuProfile,
  startGpuProfile,
  stopGpuProfile,
} from "../../packages/kernels/src/webgpu/gpu-profile";
import { gpuProfileReport } from "./gpu-profile-report";
import { StepRunner } from "../../packages/train/src/step-runner";
import { benchViews, createBenchSiT, onLastSubmit, sitBenchModel } from "./sit-bench-model";
import { instrumentPhases } from "./phases";
import { pinMainThreadAlone, threadTimes } from "./thread-time";

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}
const flag = (name: string) => process.argv.includes(`--${name}`);
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
const log = (line: string) => console.error(`[sit_step] ${line}`);

const modelName = option("model", "tiny");
const BASE_MODEL = sitBenchModel(modelName);
// --img overrides the image size (a multiple of the patch), for long no-growth runs only.
const IMG = Number(option("img", String(BASE_MODEL.img)));
if (!Number.isInteger(IMG) || IMG < BASE_MODEL.patch || IMG % BASE_MODEL.patch !== 0)
  throw new Error(`--img: expected a multiple of the patch size ${BASE_MODEL.patch}, got ${IMG}`);
const MODEL =
  IMG === BASE_MODEL.img
    ? BASE_MODEL
    : ({
        ...BASE_MODEL,
        img: IMG,
        name: BASE_MODEL.name.replace(/at \d+ px/, `at ${IMG} px`),
      } as unknown as typeof BASE_MODEL);
const backend = option("backend", "wasm") as BackendName;
const BATCH = Number(option("batch", modelName === "tiny" && backend === "webgpu" ? "256" : "64"));
const ITERS = Number(option("iters", backend === "cpu" ? "1" : "3"));
const WARMUP = Number(option("warmup", backend === "cpu" ? "0" : "1"));
const DEPTH = Number(option("depth", String(MODEL.depth)));
const MEMORY_STEPS = Number(option("memory-steps", "0"));
const TORCH_DEVICE = option("torch-device", backend === "webgpu" ? "cuda" : "cpu");
// on | off | k (recompute only the first k blocks: partial recomputation).
const checkpointOption = option("checkpoint-blocks", backend === "wasm" ? "on" : "off");
const recomputedBlocks = /^\d+$/.test(checkpointOption) ? Number(checkpointOption) : null;
const checkpointBlocks = checkpointOption === "on" || recomputedBlocks !== null;
const fusedBlock = option("fused-block", "on") === "on";
const lateRead = flag("late-read");
const captureOption = option("capture", "on");
if (captureOption !== "on" && captureOption !== "off")
  throw new Error(`--capture: expected on or off, got ${JSON.stringify(captureOption)}`);
const stepCapture = captureOption === "on";
const torchMemory = flag("torch-memory");
if (torchMemory && TORCH_DEVICE !== "cpu")
  throw new Error(
    `--torch-memory: PyTorch's CPU peak needs --torch-device cpu, got ${TORCH_DEVICE} (on cuda the report compares with max_memory_allocated)`,
  );
const precision = option("precision", "f32");
const lossScalerPath = option("loss-scaler", "device");
if (!["device", "host"].includes(lossScalerPath))
  throw new Error(`--loss-scaler: expected device or host, got ${lossScalerPath}`);
const gpuProfile = flag("gpu-profile");
if (gpuProfile && backend !== "webgpu")
  throw new Error(
    `--gpu-profile: times WebGPU dispatches, so it needs --backend webgpu, got --backend ${backend}`,
  );
if (gpuProfile && MEMORY_STEPS > 0)
  throw new Error("--gpu-profile: not with --memory-steps (which replaces the timed steps)");
setWebgpuFusedBlock(fusedBlock);
const splitK = option("split-k", "auto");
if (splitK !== "auto" && splitK !== "off")
  throw new Error(`--split-k: expected auto or off, got ${splitK}`);
setGemmSplitK(splitK === "off" ? 1 : "auto");
for (const [k, v] of Object.entries({ BATCH, ITERS, WARMUP, DEPTH, MEMORY_STEPS }))
  if (!Number.isInteger(v) || v < 0 || (v === 0 && k !== "WARMUP" && k !== "MEMORY_STEPS"))
    throw new Error(`--${k.toLowerCase().replace("_", "-")}: expected a non-negative integer`);

function benchTorch(): Record<string, unknown> {
  if (flag("no-torch") || (MEMORY_STEPS > 0 && !torchMemory))
    return { available: false, note: "skipped" };
  const script = fileURLToPath(new URL("./sit_step_torch.py", import.meta.url));
  const python =
    process.env.SIT_TORCH_PYTHON ??
    (existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3");
  const args = [
    script,
    ...["--model", modelName, "--device", TORCH_DEVICE, "--batch", String(BATCH)],
    ...["--depth", String(DEPTH), "--img", String(IMG), "--threads", "2"],
    ...["--iters", option("torch-iters", "3"), "--warmup", option("torch-warmup", "1")],
    ...(torchMemory ? ["--cpu-memory"] : []),
  ];
  log(`PyTorch: ${python} ${args.join(" ")}`);
  const r = spawnSync(python, args, { encoding: "utf8", maxBuffer: 1 << 24 });
  if (r.error || r.status !== 0)
    return {
      available: false,
      note: `${python} ${script} failed: ${r.error?.message ?? r.stderr.trim().split("\n").pop()}`,
    };
  try {
    return JSON.parse(r.stdout.trim().split("\n").pop() ?? "");
  } catch {
    return { available: false, note: `unparseable output: ${r.stdout.slice(0, 200)}` };
  }
}

/** The wasm module's heap size (its high-water mark: a wasm heap never shrinks), when visible. */
function wasmHeapBytes(): number | undefined {
  const b = tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } };
  return b.wasm?.HEAPU8?.buffer.byteLength;
}

/** WebGPU buffer bytes: held by live tensors, and allocated by the pool (used + free). */
function gpuBytes(): { in_use: number; allocated: number; buffers: number } | undefined {
  const m = tf.memory() as tf.MemoryInfo & { numBytesInGPU?: number };
  const pool = (
    tf.backend() as unknown as {
      bufferManager?: {
        numBytesAllocated: number;
        getNumUsedBuffers(): number;
        getNumFreeBuffers(): number;
      };
    }
  ).bufferManager;
  if (m.numBytesInGPU === undefined || !pool) return undefined;
  return {
    in_use: m.numBytesInGPU,
    allocated: pool.numBytesAllocated,
    buffers: pool.getNumUsedBuffers() + pool.getNumFreeBuffers(),
  };
}

/**
 * tfjs-backend-webgpu's synchronous read (`dataSync`) draws through an OffscreenCanvas, which
 * Node does not have, so any `dataSync` of a GPU tensor throws there. The recipe reads its losses
 * that way, so on webgpu under Node the bench replaces the backend's readSync by one that returns
 * NaNs for GPU-resident data (counting each call site) and synchronises every step with an async
 * read instead — the same one GPU→CPU round trip per step. Reported as `sync_reads_stubbed`.
 */
function stubSyncReads(): Map<string, number> | undefined {
  const be = tf.backend() as unknown as {
    readSync?: (id: object) => unknown;
    tensorMap?: { get(id: object): { values?: unknown; resource?: { size: number } } };
  };
  if (tf.getBackend() !== "webgpu" || "OffscreenCanvas" in globalThis || !be.readSync) return;
  const original = be.readSync.bind(be);
  const sites = new Map<string, number>();
  be.readSync = (id: object) => {
    const d = be.tensorMap?.get(id);
    if (!d || d.values != null || !d.resource) return original(id);
    const frames = (new Error().stack ?? "").split("\n").map((l) => l.trim());
    const site = frames.find((l) => l.includes("packages/")) ?? frames[3] ?? "?";
    sites.set(site, (sites.get(site) ?? 0) + 1);
    return new Float32Array(d.resource.size / 4).fill(Number.NaN);
  };
  return sites;
}

/**
 * Host time of a step on webgpu: from the step's start until the submit that hands its last
 * commands to the GPU returns (the step's trailing commands are submitted explicitly), minus the
 * time spent waiting for GPU results inside the step's reads (the loss readback: GPU time, which
 * on a CPU Vulkan driver such as lavapipe is not host time of the step's encoding). Wraps the
 * backend's queue.submit and getBufferData (tfjs-backend-webgpu 4.22). Single-threaded JS: while
 * the step awaits a read, nothing else of the step runs, so the subtraction is exact.
 *
 * Also the main thread's CPU time and run-queue wait over the same span (Linux schedstat, in
 * nanoseconds, one read of both at each edge; undefined elsewhere): tfjs and Dawn encode the step
 * on that thread, and unlike wall time its CPU time excludes waiting for a busy machine's cores.
 * A software driver (lavapipe) also executes commands on this thread while a read waits
 * (measured: about half of them), so host_cpu_ms leaves out the CPU time spent inside reads;
 * submit_cpu_ms is the part spent inside queue.submit (on lavapipe it may hold execution too).
 */
function hostClock() {
  const be = tf.backend() as unknown as {
    queue?: { submit: (buffers: unknown[]) => void };
    device?: { createBindGroup: (desc: unknown) => unknown };
    commandEncoder?: unknown;
    submitQueue?: () => void;
    getBufferData?: (buffer: unknown) => Promise<unknown>;
  };
  const queue = be.queue;
  const getBufferData = be.getBufferData;
  if (!queue || !getBufferData || !be.submitQueue) return undefined;
  const submit = queue.submit;
  let lastSubmitEnd = 0;
  let submits = 0;
  let wait = 0;
  let cpu0: number | undefined;
  let waitCpu = 0;
  // The main thread's run-queue wait: from the start, and inside the reads (left out, as their CPU).
  let queued0: number | undefined;
  let waitQueued = 0;
  let submitCpu = 0;
  // Bind groups made during the step: one per dispatch whose buffers (or uniforms) differ from
  // the last time its pipeline ran with them; each costs host time in Dawn.
  let bindGroups = 0;
  const device = be.device;
  if (device) {
    const createBindGroup = device.createBindGroup;
    device.createBindGroup = (desc: unknown) => {
      bindGroups++;
      return createBindGroup.call(device, desc);
    };
  }
  queue.submit = (buffers: unknown[]) => {
    const c = threadTimes()?.cpuMs;
    submit.call(queue, buffers);
    const c1 = threadTimes()?.cpuMs;
    if (c !== undefined && c1 !== undefined) submitCpu += c1 - c;
    submits++;
    lastSubmitEnd = performance.now();
  };
  // Reads that wait at the same time (a step's loss read and a loss scaler's state read, both
  // started at the step's end) count once: the wait is the union of their intervals.
  let waiting = 0;
  let waitFrom = 0;
  let cpuFrom: number | undefined;
  let queuedFrom: number | undefined;
  be.getBufferData = async (buffer: unknown) => {
    const t0 = performance.now();
    const before = lastSubmitEnd;
    const p = getBufferData.call(be, buffer);
    // The staging copy is submitted synchronously inside getBufferData: what follows is waiting.
    const submitted = lastSubmitEnd !== before ? lastSubmitEnd : t0;
    // A software driver (lavapipe) executes the commands partly on this thread while it waits.
    if (waiting++ === 0) {
      waitFrom = submitted;
      const from = threadTimes();
      cpuFrom = from?.cpuMs;
      queuedFrom = from?.waitMs;
    }
    try {
      return await p;
    } finally {
      if (--waiting === 0) {
        const to = threadTimes();
        const c1 = to?.cpuMs;
        if (cpuFrom !== undefined && c1 !== undefined) waitCpu += c1 - cpuFrom;
        const q1 = to?.waitMs;
        if (queuedFrom !== undefined && q1 !== undefined) waitQueued += q1 - queuedFrom;
        wait += performance.now() - waitFrom;
      }
    }
  };
  return {
    start() {
      submits = 0;
      bindGroups = 0;
      wait = 0;
      waitCpu = 0;
      waitQueued = 0;
      submitCpu = 0;
      const from = threadTimes();
      cpu0 = from?.cpuMs;
      queued0 = from?.waitMs;
      lastSubmitEnd = performance.now();
      return lastSubmitEnd;
    },
    /** The main thread's CPU time and run-queue wait read by the last start(). */
    startTimes: () => ({ cpu: cpu0, queued: queued0 }),
    /** Submits since start() (late path: the read's submit is the step's last). */
    submitsSoFar: () => submits,
    submitCpuSoFar: () => submitCpu,
    bindGroupsSoFar: () => bindGroups,
    /**
     * After the step: submit what it left encoded; then its host time (ms): wall time until that
     * submit returned, less the waits for GPU results; and the raw time to its last submit.
     */
    stop(t0: number) {
      if (be.commandEncoder) be.submitQueue?.();
      const end = performance.now();
      const to = threadTimes();
      const cpu1 = to?.cpuMs;
      const queued1 = to?.waitMs;
      return {
        host_ms: end - t0 - wait,
        host_cpu_ms: cpu0 !== undefined && cpu1 !== undefined ? cpu1 - cpu0 - waitCpu : Number.NaN,
        host_runqueue_wait_ms:
          queued0 !== undefined && queued1 !== undefined
            ? queued1 - queued0 - waitQueued
            : Number.NaN,
        submit_cpu_ms: submitCpu,
        read_wait_ms: wait,
        to_last_submit_ms: lastSubmitEnd - t0,
        submits,
        bind_groups: bindGroups,
      };
    },
  };
}

async function benchTfjs(): Promise<Record<string, unknown>> {
  const info = await initBackend(backend, {
    log: false,
    allowSoftwareAdapter: flag("allow-software-adapter"),
  });
  log(`${info.name}${info.adapter ? ` on ${info.adapter}` : ""}`);
  const c0 = performance.now();
  const recipe = createBenchSiT(MODEL, BATCH, {
    depth: DEPTH,
    checkpointBlocks,
    precision: precision as Precision,
  });
  if (recomputedBlocks !== null) recipe.student.backbone.checkpointBlocks = recomputedBlocks;
  recipe.stepCapture.enabled = stepCapture;
  // (The recipe moves its scaler to the device only where the optimiser says it can.)
  if (lossScalerPath === "host") recipe.optimizer.fusesLossScale = () => false;
  const views = benchViews(MODEL, BATCH);
  const batch = { views };
  log(`${info.name}: model built in ${Math.round(performance.now() - c0)} ms`);
  // Wall time per phase of the timed steps (host time only on webgpu: kernels run later).
  const phases = instrumentPhases(recipe as never);
  const stubbed = stubSyncReads();
  // Waits for queued GPU work (the optimiser and EMA updates after the loss readback).
  // (drain = false keeps a --late-read pipeline primed: the next step then reads this one late.)
  const flush = async (drain = true) => {
    if (drain) await runner?.drain();
    // (Not a read of a weight: that writes its deferred values back, which a captured step
    // cannot replay past: @sit/recipes' captured-steps.ts.)
    const device = (
      tf.backend() as unknown as { device?: { queue: { onSubmittedWorkDone(): Promise<void> } } }
    ).device;
    if (device) await device.queue.onSubmittedWorkDone();
    else await recipe.student.namedParameters()[0][1].data();
  };
  let peakGpu = 0;
  // The pool's bytes in use (live buffers, the fused blocks' workspaces included) at their highest:
  // what compares with PyTorch's max_memory_allocated; peakGpu also counts the free buffers the
  // pool keeps for reuse (PyTorch's reserved memory is the analogue).
  let peakInUse = 0;
  const pool = (
    tf.backend() as unknown as {
      bufferManager?: { numBytesUsed: number; acquireBuffer: (...a: unknown[]) => unknown };
    }
  ).bufferManager;
  if (pool) {
    // The recipes' settle gives tfjs's pool constant-time calls unless they are wrapped already:
    // settle first, so that the steps run on that pool and the probe wraps it.
    settleBufferPool();
    const acquire = pool.acquireBuffer;
    pool.acquireBuffer = (...a: unknown[]) => {
      const buffer = acquire.apply(pool, a);
      peakInUse = Math.max(peakInUse, pool.numBytesUsed);
      return buffer;
    };
  }
  let step = 0;
  const clock = hostClock();
  const host: ReturnType<NonNullable<typeof clock>["stop"]>[] = [];
  // --late-read: fit's step runner; the submit that starts a step's loss read is its last.
  const runner = lateRead ? new StepRunner(recipe, true, { disposeBatches: false }) : undefined;
  let launchEnd:
    | {
        t: number;
        cpu: number | undefined;
        queued: number | undefined;
        submits: number;
        submitCpu: number;
        bindGroups: number;
      }
    | undefined;
  if (runner)
    onLastSubmit(recipe, () => {
      const to = threadTimes();
      launchEnd = {
        t: performance.now(),
        cpu: to?.cpuMs,
        queued: to?.waitMs,
        submits: clock?.submitsSoFar() ?? 0,
        submitCpu: clock?.submitCpuSoFar() ?? Number.NaN,
        bindGroups: clock?.bindGroupsSoFar() ?? 0,
      };
    });
  const run = async () => {
    if (runner) {
      const t0 = clock ? clock.start() : performance.now();
      const ran = await runner.run(batch, step++, 0);
      const end = launchEnd!;
      if (clock) {
        const { cpu: cpu0, queued: queued0 } = clock.startTimes();
        host.push({
          host_ms: end.t - t0,
          host_cpu_ms: end.cpu !== undefined && cpu0 !== undefined ? end.cpu - cpu0 : Number.NaN,
          host_runqueue_wait_ms:
            end.queued !== undefined && queued0 !== undefined ? end.queued - queued0 : Number.NaN,
          submit_cpu_ms: end.submitCpu,
          read_wait_ms: ran?.readWaitMs ?? 0,
          to_last_submit_ms: end.t - t0,
          submits: end.submits,
          bind_groups: end.bindGroups,
        });
      }
      log(`${info.name} step ${step}: ${Math.round(performance.now() - t0)} ms (late read)`);
      // The first call launches only; its caller then sees the previous loss (NaN for none).
      return ran?.result ?? { loss: Number.NaN };
    }
    const t0 = clock ? clock.start() : performance.now();
    const r = await recipe.trainStep(batch, step++);
    if (clock) host.push(clock.stop(t0));
    if (stubbed) await flush();
    peakGpu = Math.max(peakGpu, gpuBytes()?.allocated ?? 0);
    log(`${info.name} step ${step}: ${Math.round(performance.now() - t0)} ms`);
    return r;
  };
  const common = {
    backend: info.name,
    ...(info.threads !== undefined ? { threads: info.threads, simd: info.simd } : {}),
    ...(info.adapter ? { adapter: info.adapter } : {}),
    // (The fused block's backward finishes its sums in one dispatch from 13 storage bindings.)
    ...(backend === "webgpu"
      ? {
          max_storage_buffers_per_stage: (
            tf.backend() as unknown as { device: { limits: Record<string, number> } }
          ).device.limits.maxStorageBuffersPerShaderStage,
        }
      : {}),
    checkpoint_blocks: recomputedBlocks ?? checkpointBlocks,
    fused_block: fusedBlock,
    split_k: splitK,
    late_read: lateRead,
    precision,
    ...(recipe.lossScaler ? { loss_scaler_path: lossScalerPath } : {}),
    params: recipe.student.namedParameters().reduce((n, [, v]) => n + v.size, 0),
  };
  if (MEMORY_STEPS > 0) {
    const sample = () => ({
      step,
      tensors: tf.memory().numTensors,
      tfjs_bytes: tf.memory().numBytes,
      ...(gpuBytes() ? { gpu: gpuBytes() } : {}),
      ...(wasmHeapBytes() !== undefined ? { wasm_heap_bytes: wasmHeapBytes() } : {}),
      rss_mb: round(process.memoryUsage().rss / 2 ** 20),
    });
    const early = Math.min(10, MEMORY_STEPS);
    let first: ReturnType<typeof sample> | undefined;
    const t0 = performance.now();
    // The peak in use of each step (of the first three, and of the last: the steady state that
    // compares with PyTorch's step after a warm-up; the first steps also build the optimiser's
    // flat buffers and move the parameters and the teacher into flat ones).
    const stepPeaks: number[] = [];
    let allSteps = 0;
    while (step < MEMORY_STEPS) {
      if (pool) peakInUse = pool.numBytesUsed;
      await run();
      if (pool) {
        await flush();
        allSteps = Math.max(allSteps, peakInUse);
        if (stepPeaks.length < 3 || step === MEMORY_STEPS) stepPeaks.push(peakInUse);
      }
      if (step === early) {
        await flush();
        first = sample();
      }
      // A progress line every 100 steps: a run cut short by its time limit still shows the trend.
      if (step % 100 === 0) {
        await flush();
        log(`memory: ${JSON.stringify({ ...sample(), step_capture: recipe.stepCapture.status })}`);
      }
    }
    await flush();
    const last = sample();
    const result = {
      ...common,
      memory_steps: MEMORY_STEPS,
      step_capture: { enabled: stepCapture, ...recipe.stepCapture.status },
      ...(stubbed ? { sync_reads_stubbed: Object.fromEntries(stubbed) } : {}),
      step_ms: round((performance.now() - t0) / MEMORY_STEPS),
      at_early: first,
      at_end: last,
      tensor_growth: last.tensors - (first?.tensors ?? 0),
      gpu_allocated_growth: (last.gpu?.allocated ?? 0) - (first?.gpu?.allocated ?? 0),
      ...(pool
        ? {
            peak_gpu_in_use_bytes: stepPeaks[stepPeaks.length - 1],
            peak_gpu_in_use_bytes_first_steps: stepPeaks.slice(0, 3),
            peak_gpu_in_use_bytes_all_steps: allSteps,
          }
        : {}),
      no_growth:
        last.tensors === first?.tensors &&
        (last.gpu?.allocated ?? 0) <= (first?.gpu?.allocated ?? 0) &&
        (last.wasm_heap_bytes ?? 0) <= (first?.wasm_heap_bytes ?? 0),
    };
    tf.dispose(views);
    recipe.dispose();
    return result;
  }
  const w0 = performance.now();
  for (let i = 0; i < WARMUP; i++) await run();
  if (WARMUP > 0) await flush(false);
  // A CPU driver's threads then cannot take the main thread's core (as beside a GPU).
  const pinnedThreads = flag("pin-main-thread") ? pinMainThreadAlone() : null;
  const warmupMs = WARMUP > 0 ? (performance.now() - w0) / WARMUP : undefined;
  const tensorsBefore = tf.memory().numTensors;
  host.length = 0;
  const times: number[] = [];
  let loss = Number.NaN;
  const l0 = performance.now();
  phases.timer.reset();
  // Process CPU time (all threads: wasm's pthreads are workers of this process) over wall time.
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < ITERS; i++) {
    const t0 = performance.now();
    loss = (await phases.timeStep(run)).loss;
    times.push(performance.now() - t0);
  }
  await flush();
  const phasesMs = phases.timer.perStep();
  const cpu = process.cpuUsage(cpu0);
  const cpuCoresBusy = round((cpu.user + cpu.system) / 1000 / (performance.now() - l0), 2);
  const ms = (performance.now() - l0) / ITERS;
  const timedHost = host.slice(0, ITERS);
  // The GMML drawing alone (typed-array loops on the CPU; part of trainStep above).
  const maskRng = Rng.seed(5);
  const m0 = performance.now();
  const drawn = corruptViews(recipe.masker, views, maskRng);
  const maskMs = performance.now() - m0;
  tf.dispose(Object.values(drawn).flat());
  // One more step under tf.profile: kernel launches and tfjs's peak bytes.
  // GPU dispatches: tf.profile also counts kernels that launch nothing on webgpu (Reshape,
  // Identity, … share buffers), so count the backend's program runs plus the dispatches that
  // @sit/kernels encodes itself (GEMM, flat AdamW/EMA) during the same step.
  const be = tf.backend() as unknown as { runWebGPUProgram?: (...a: unknown[]) => unknown };
  const runProgram = be.runWebGPUProgram;
  let dispatches = 0;
  if (runProgram)
    be.runWebGPUProgram = (...a: unknown[]) => {
      dispatches++;
      return runProgram.apply(be, a);
    };
  const raw0 = rawDispatchCount();
  const profile = await tf.profile(async () => {
    await run();
  });
  if (runProgram) be.runWebGPUProgram = runProgram;
  const directDispatches = rawDispatchCount() - raw0;
  dispatches += directDispatches;
  const byKernel = new Map<string, number>();
  for (const k of profile.kernels) byKernel.set(k.name, (byKernel.get(k.name) ?? 0) + 1);
  // Every kernel of the step, most frequent first (what is left to fuse).
  const byCount = [...byKernel.entries()].sort((a, b) => b[1] - a[1]);
  const gpu = gpuBytes();
  // After everything else is measured: one step with a timestamped pass per dispatch.
  let profiled: Record<string, unknown> | undefined;
  if (gpuProfile) {
    await flush();
    // A replay makes no kernel calls to time: this step runs through tfjs.
    recipe.stepCapture.enabled = false;
    startGpuProfile();
    const t0 = performance.now();
    let p: GpuProfile;
    try {
      await run();
      await flush();
    } finally {
      p = await stopGpuProfile();
    }
    profiled = gpuProfileReport(p, performance.now() - t0);
  }
  const result: Record<string, unknown> = {
    ...common,
    iters: ITERS,
    warmup: WARMUP,
    ...(warmupMs !== undefined ? { first_step_ms: round(warmupMs) } : {}),
    ...(pinnedThreads !== null
      ? { pinned: `main thread on CPU 0, the ${pinnedThreads} other threads on CPU 1` }
      : {}),
    step_ms: round(ms),
    step_ms_min: round(Math.min(...times)),
    images_per_s: round(BATCH / (ms / 1000), 2),
    gmml_drawing_ms: round(maskMs),
    phases_ms: phasesMs,
    cpu_cores_busy: cpuCoresBusy,
    kernel_launches_per_step: profile.kernels.length,
    tfjs_kernel_calls_per_step: profile.kernels.length,
    ...(runProgram
      ? { gpu_dispatches_per_step: dispatches, direct_dispatches_per_step: directDispatches }
      : {}),
    ...(timedHost.length
      ? {
          host_ms: round(timedHost.reduce((a, h) => a + h.host_ms, 0) / timedHost.length),
          host_ms_min: round(Math.min(...timedHost.map((h) => h.host_ms))),
          host_cpu_ms: round(timedHost.reduce((a, h) => a + h.host_cpu_ms, 0) / timedHost.length),
          host_cpu_ms_min: round(Math.min(...timedHost.map((h) => h.host_cpu_ms))),
          host_runqueue_wait_ms: round(
            timedHost.reduce((a, h) => a + h.host_runqueue_wait_ms, 0) / timedHost.length,
          ),
          submit_cpu_ms: round(
            timedHost.reduce((a, h) => a + h.submit_cpu_ms, 0) / timedHost.length,
          ),
          read_wait_ms: round(timedHost.reduce((a, h) => a + h.read_wait_ms, 0) / timedHost.length),
          submits_per_step: timedHost[0].submits,
          bind_groups_per_step: timedHost.map((h) => h.bind_groups),
        }
      : {}),
    kernel_launches_by_name: Object.fromEntries(byCount),
    peak_tfjs_bytes_in_step: profile.peakBytes,
    tfjs_bytes_after_step: tf.memory().numBytes,
    ...(gpu
      ? {
          gpu_bytes_after_step: gpu,
          peak_gpu_allocated_bytes: peakGpu,
          peak_gpu_in_use_bytes: peakInUse,
        }
      : {}),
    ...(wasmHeapBytes() !== undefined ? { wasm_heap_bytes: wasmHeapBytes() } : {}),
    max_rss_mb: round(process.resourceUsage().maxRSS / 1024),
    tensors_leaked_per_step: (tf.memory().numTensors - tensorsBefore) / (ITERS + 1),
    ...(stubbed ? { sync_reads_stubbed: Object.fromEntries(stubbed) } : {}),
    loss_finite:
      stubbed && stubbed.size > 0 ? "unknown (sync reads stubbed)" : Number.isFinite(loss),
    // Mixed precision: the scale after the run (it halves on each step skipped for an overflow).
    ...(recipe.lossScaler ? { loss_scaler: recipe.lossScaler.state() } : {}),
    ...(profiled ? { gpu_profile: profiled } : {}),
    step_capture: { enabled: stepCapture, ...recipe.stepCapture.status },
  };
  tf.dispose(views);
  recipe.dispose();
  return result;
}

const report: Record<string, unknown> = {
  bench: MEMORY_STEPS > 0 ? "sit_step_memory" : "sit_step",
  model: `SiT v3, ${MODEL.name} (D ${MODEL.dim}, depth ${DEPTH}, ${MODEL.heads} heads), projection 4096 → 256, reconstruction head, EMA teacher, λ = 5`,
  model_key: modelName,
  batch: BATCH,
  node: process.version,
  tfjs: tf.version.tfjs,
  cpu: `${cpus()[0]?.model?.trim()} × ${cpus().length}`,
  loadavg_start: loadavg().map((x) => round(x, 2)),
};
// PyTorch first, while the machine is as quiet as it will be; then tfjs.
const torch = benchTorch();
const tfjs = await benchTfjs();
report.tfjs = tfjs;
report.torch = torch;
if (torch.available && typeof torch.step_ms === "number")
  report.ratio_tfjs_over_torch = round((tfjs.step_ms as number) / torch.step_ms, 2);
if (torch.available) {
  // PyTorch's tensor bytes at their peak: max_memory_allocated on CUDA, the profiled sum on the CPU.
  const torchPeak = (torch.max_memory_allocated_bytes ?? torch.peak_tensor_bytes) as
    | number
    | undefined;
  const tfjsPeak = (tfjs.peak_gpu_allocated_bytes ?? tfjs.wasm_heap_bytes) as number | undefined;
  const inUse = tfjs.peak_gpu_in_use_bytes as number | undefined;
  // The pool's whole size (free buffers kept for reuse included), as before.
  if (torchPeak && tfjsPeak) report.ratio_peak_memory = round(tfjsPeak / torchPeak, 2);
  // Live buffers only: the counterpart of max_memory_allocated (the pool's free buffers are
  // PyTorch's reserved-but-unallocated memory).
  if (torchPeak && inUse) report.ratio_peak_in_use_memory = round(inUse / torchPeak, 2);
}
report.loadavg_end = loadavg().map((x) => round(x, 2));
report.note =
  "host_ms (webgpu) = from the step's start until the submit of its last commands returns, minus read_wait_ms (waiting for the GPU inside the step's loss reads), mean over the timed steps; host_cpu_ms = CPU time of the main thread over the same span, less its CPU time inside the reads (Linux schedstat; excludes waiting for a busy machine's cores; submit_cpu_ms = its part inside queue.submit); host_runqueue_wait_ms = the main thread's time in the same span runnable but without a free core (Linux schedstat; less that inside the reads): host_ms ≈ host_cpu_ms + host_runqueue_wait_ms + any sleep; bind_groups_per_step = device.createBindGroup calls in each timed step. Step = trainStep (GMML drawing included; gmml_drawing_ms is its share) vs PyTorch's step on pre-drawn corruption (SiT draws it in data-loader workers). step_ms = wall time of the timed steps (plus one final readback) / iters. kernel_launches = tfjs kernels run (tf.profile); a registered fused kernel counts once. Compare numbers from the same run only; loadavg shows the contention.";
if (lateRead)
  report.note +=
    " --late-read: steps run as fit runs them on webgpu (StepRunner): host_ms and host_cpu_ms run until the submit that starts the step's loss read returns; read_wait_ms is the wait for the previous step's losses (the first timed step's predecessor was flushed, so its wait is short).";
// Exit once printed: on webgpu, Dawn's device keeps Node's event loop alive (a finished run on
// lavapipe went on burning CPU for half an hour).
process.stdout.write(`${JSON.stringify(report, null, 2)}\n`, () => process.exit(0));
