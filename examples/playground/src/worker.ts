/// <reference lib="webworker" />
// The training worker: starts a tfjs backend (webgpu, else wasm, else cpu), then runs one
// TrainingSession at a time on the page's commands. Training off the main thread keeps the page
// responsive while a step runs.
import { initBackend } from "@sit/core";
import { listKernelOverrides } from "@sit/kernels";
// The wasm binaries are served from the page's own build (no CDN): Vite emits them as assets.
import wasmPlain from "@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm?url";
import wasmSimd from "@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm?url";
import wasmThreaded from "@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm?url";
import { checkpointConfig, decodePageCheckpoint, encodePageCheckpoint } from "./checkpoint";
import type { FromWorker, RunState, StartRun, ToWorker } from "./protocol";
import { TrainingSession } from "./session";

declare const self: DedicatedWorkerGlobalScope;

let session: TrainingSession | null = null;
let running: Promise<void> | null = null;
let state: RunState = "no-backend";

function post(message: FromWorker, transfer: Transferable[] = []): void {
  self.postMessage(message, transfer);
}

function setState(next: RunState, message?: string): void {
  state = next;
  post({ type: "state", state, ...(message ? { message } : {}) });
}

function fail(err: unknown): void {
  const message = err instanceof Error ? err.message : String(err);
  console.error(err);
  post({ type: "error", message });
}

async function init(
  backend: "auto" | "webgpu" | "wasm" | "cpu",
  allowSoftwareAdapter: boolean,
): Promise<void> {
  const info = await initBackend(backend, {
    log: false,
    allowSoftwareAdapter,
    wasmPaths: {
      "tfjs-backend-wasm.wasm": wasmPlain,
      "tfjs-backend-wasm-simd.wasm": wasmSimd,
      "tfjs-backend-wasm-threaded-simd.wasm": wasmThreaded,
    },
  });
  const detail = [
    info.adapter ? `adapter ${info.adapter}` : "",
    info.threads !== undefined
      ? `${info.threads} thread${info.threads === 1 ? "" : "s"}${info.simd ? ", SIMD" : ""}`
      : "",
    info.note ?? "",
    ...info.skipped.map((s) => `skipped ${s.name}: ${s.reason}`),
  ].filter(Boolean);
  post({
    type: "backend",
    name: info.name,
    detail: detail.join("; "),
    ...(info.threads !== undefined ? { threads: info.threads } : {}),
    ...(info.adapter ? { adapter: info.adapter } : {}),
    kernels: listKernelOverrides()
      .filter((k) => k.backend === info.name)
      .map((k) => k.name),
  });
  setState("idle");
}

async function start(run: StartRun): Promise<void> {
  if (session) throw new Error("a run is already open: reset it first");
  setState("preparing");
  let startStep = 0;
  let priorElapsed = 0;
  const next = new TrainingSession(run, post);
  session = next;
  if (run.resume) {
    const loaded = decodePageCheckpoint(run.resume.bytes, run.resume.name);
    try {
      await next.recipe.loadState(loaded.state);
    } finally {
      loaded.dispose();
    }
    startStep = loaded.progress.step;
    priorElapsed = loaded.progress.elapsedSec;
    next.progress = { ...loaded.progress, stepsPerEpoch: next.progress.stepsPerEpoch };
  }
  setState("running");
  running = next
    .train(startStep, priorElapsed)
    .then(() => setState(session === next ? "finished" : state))
    .catch((err) => {
      fail(err);
      if (session === next) setState("finished", "stopped by an error");
    });
}

async function save(): Promise<void> {
  const s = session;
  if (!s) throw new Error("no run to save: start one first");
  await s.whenIdle(async () => {
    const { name, bytes, config } = await encodePageCheckpoint(s);
    post({ type: "checkpoint", step: s.progress.step, name, bytes, config }, [bytes.buffer]);
  });
}

async function reset(): Promise<void> {
  const s = session;
  if (!s) return;
  s.stop();
  await running;
  s.dispose();
  session = null;
  running = null;
  setState("idle");
}

self.onmessage = async (event: MessageEvent<ToWorker>) => {
  const m = event.data;
  try {
    if (m.type === "init") await init(m.backend, m.allowSoftwareAdapter);
    else if (m.type === "start") await start(m);
    else if (m.type === "pause") {
      session?.pause();
      if (session && state === "running") setState("paused");
    } else if (m.type === "resume") {
      session?.resume();
      if (session && state === "paused") setState("running");
    } else if (m.type === "reset") await reset();
    else if (m.type === "save") await save();
    else if (m.type === "open") {
      const loaded = decodePageCheckpoint(m.bytes, m.name);
      loaded.dispose();
      post({
        type: "opened",
        name: m.name,
        step: loaded.progress.step,
        config: checkpointConfig(loaded),
      });
    }
  } catch (err) {
    fail(err);
    if (m.type === "start") await reset();
  }
};
