import * as tf from "@tensorflow/tfjs";
import { type WasmHooks, type WasmPaths, startWasm } from "./backend-wasm";
import { type PrepareWebgpu, startWebgpu } from "./backend-webgpu";
import { BackendError, checkNumber, describeValue } from "./errors";

// Importing the union package registers every gradient under Node (tfjs-core alone registers none).
// No backend is registered here: wasm and webgpu load inside initBackend, so that importing
// @sit/core has no side effect and tfjs falls back to its cpu backend when initBackend is not called.
//
// One selection for every runtime. What differs between a web page and Node is a BackendHost: the
// order, environment variables, and the Node-only ways to start a backend (tfjs-node, Dawn, wasm
// binaries in node_modules, wasm threads from a worker file), which @sit/core/node supplies.

export type BackendName = "tensorflow" | "webgpu" | "wasm" | "cpu";
export const BACKEND_NAMES: readonly BackendName[] = ["tensorflow", "webgpu", "wasm", "cpu"];

/** What {@link initBackend} chose, and why it skipped the others. */
export interface BackendInfo {
  name: BackendName;
  /** Which package provided it (e.g. `@tensorflow/tfjs-node-gpu`). */
  provider: string;
  reason: string;
  skipped: { name: BackendName; reason: string }[];
  /** WebGPU adapter description, when webgpu was chosen. */
  adapter?: string;
  /** WASM: XNNPACK threads in use, and whether the SIMD build runs. */
  threads?: number;
  simd?: boolean;
  /** Anything that ran below what was asked (e.g. why wasm fell back to one thread). */
  note?: string;
}

export interface InitBackendOptions {
  /** Accept a software WebGPU adapter (Mesa lavapipe, SwiftShader): slow, but it runs WGSL on CPU-only machines. Default false, or under Node `SIT_WEBGPU_SOFTWARE=1`. */
  allowSoftwareAdapter?: boolean;
  /**
   * WASM threads (default under Node: `SIT_WASM_THREADS`, else the available cores, at most 8; in
   * a page: its cores when it is cross-origin isolated, else 1). 1 uses the single-threaded SIMD
   * build, which starts faster.
   */
  wasmThreads?: number;
  /**
   * Where the wasm backend finds its `.wasm` binaries: a URL prefix ending in `/`, or a URL per
   * file (tfjs's `setWasmPaths`). In a web page, where the bundler put them; under Node, the
   * default is the package's own folder in node_modules.
   */
  wasmPaths?: WasmPaths;
  /** Print the one-line choice summary (default true). */
  log?: boolean | ((line: string) => void);
}

/**
 * What a runtime brings to {@link initBackend}: the automatic order, its settings, and its own ways
 * to start a backend. The web page's is this module's; Node's is @sit/core/node's.
 * @internal
 */
export interface BackendHost {
  /** The order of `"auto"`. */
  auto: readonly BackendName[];
  /** A setting by name (`SIT_BACKEND`, …), or undefined where the runtime has none. */
  setting(name: string): string | undefined;
  /** wasm threads when none are asked for. */
  defaultWasmThreads(): number;
  /** Start tfjs-node; absent where it cannot exist (a web page). */
  startTensorflow?: () => Promise<{ provider: string } | string>;
  /** Provide `navigator.gpu` where the runtime has none of its own (Node: Dawn). */
  prepareWebgpu?: PrepareWebgpu;
  /** Who provides WebGPU, for the summary. */
  webgpuProvider: string;
  wasm: WasmHooks;
}

const INSTALL_HINT: Record<BackendName, string> = {
  tensorflow: "npm install @tensorflow/tfjs-node-gpu (CUDA) or @tensorflow/tfjs-node (CPU)",
  webgpu: "npm install webgpu @tensorflow/tfjs-backend-webgpu",
  wasm: "npm install @tensorflow/tfjs-backend-wasm",
  cpu: "npm install @tensorflow/tfjs",
};

async function tryWasm(
  threads: number,
  paths: WasmPaths | undefined,
  hooks: WasmHooks,
): Promise<{ provider: string; threads: number; simd: boolean; note?: string } | string> {
  const r = await startWasm(threads, paths, hooks);
  if (typeof r === "string") return r;
  return { provider: "@tensorflow/tfjs-backend-wasm", ...r };
}

async function startCpu(): Promise<{ provider: string } | string> {
  if (!(await tf.setBackend("cpu"))) return "the cpu backend did not start";
  // tfjs's cpu backend prints a multi-line "install tfjs-node" banner on its first tensor under
  // Node. Whoever called initBackend has chosen, and the summary line names the alternatives.
  const cpu = tf.findBackend("cpu") as { firstUse?: boolean } | null;
  if (cpu && "firstUse" in cpu) cpu.firstUse = false;
  return { provider: "@tensorflow/tfjs (cpu)" };
}

const MAX_WASM_THREADS = 8;

/**
 * A web page's runtime: WebGPU from the browser (`navigator.gpu`), then wasm (threads only where
 * the page is cross-origin isolated, which SharedArrayBuffer needs), then cpu. No settings.
 */
const BROWSER_HOST: BackendHost = {
  auto: ["webgpu", "wasm", "cpu"],
  setting: () => undefined,
  defaultWasmThreads() {
    const g = globalThis as {
      crossOriginIsolated?: boolean;
      navigator?: { hardwareConcurrency?: number };
    };
    if (g.crossOriginIsolated !== true) return 1;
    return Math.max(1, Math.min(g.navigator?.hardwareConcurrency ?? 1, MAX_WASM_THREADS));
  },
  webgpuProvider: "navigator.gpu + @tensorflow/tfjs-backend-webgpu",
  wasm: {},
};

/**
 * Pick and start the best available TensorFlow.js backend — in a web page (or a Worker).
 *
 * Order unless told otherwise: `webgpu` (the browser's `navigator.gpu`, hardware adapter) →
 * `wasm` → `cpu`. Naming one backend makes it the only candidate: if it cannot start, this throws
 * and says why. Returns what was chosen and why the others were skipped. Under Node, use
 * `initBackend` from `@sit/core/node`, which adds `tensorflow` (tfjs-node) first, WebGPU through
 * Dawn, wasm threads and the `SIT_BACKEND` environment variable.
 *
 * Nothing is registered with tfjs before this runs: without it, tfjs computes on its cpu backend.
 */
export async function initBackend(
  preference?: BackendName | "auto" | BackendName[],
  options: InitBackendOptions = {},
): Promise<BackendInfo> {
  return initBackendOn(BROWSER_HOST, preference, options);
}

/**
 * {@link initBackend} on a given runtime.
 * @internal
 */
export async function initBackendOn(
  host: BackendHost,
  preference: BackendName | "auto" | BackendName[] | undefined,
  options: InitBackendOptions,
): Promise<BackendInfo> {
  const envPref = host.setting("SIT_BACKEND");
  const fromEnv =
    (preference === undefined || preference === "auto") && envPref !== undefined && envPref !== "";
  const pref = fromEnv ? (envPref as BackendName | "auto") : (preference ?? "auto");
  const list: BackendName[] =
    pref === "auto" ? [...host.auto] : Array.isArray(pref) ? pref : [pref];
  for (const name of list) {
    if (!BACKEND_NAMES.includes(name)) {
      const from = fromEnv ? "SIT_BACKEND" : "preference";
      throw new BackendError(
        `${from}: expected one of ${BACKEND_NAMES.join(", ")} or "auto", got ${describeValue(name)}`,
      );
    }
  }
  const allowSoftware = options.allowSoftwareAdapter ?? host.setting("SIT_WEBGPU_SOFTWARE") === "1";
  // Validated up front (also SIT_WASM_THREADS) so that a bad value is an error, not a skip reason.
  const wasmThreads = !list.includes("wasm")
    ? 1
    : options.wasmThreads === undefined
      ? host.defaultWasmThreads()
      : checkNumber("wasmThreads", options.wasmThreads, {
          integer: true,
          min: 1,
          max: MAX_WASM_THREADS,
        });
  const skipped: BackendInfo["skipped"] = [];
  for (const name of list) {
    let result:
      | { provider: string; adapter?: string; threads?: number; simd?: boolean; note?: string }
      | string;
    try {
      if (name === "tensorflow")
        result = host.startTensorflow
          ? await host.startTensorflow()
          : "tensorflow (tfjs-node) runs under Node only: use initBackend from @sit/core/node";
      else if (name === "webgpu")
        result = await startWebgpu(allowSoftware, host.webgpuProvider, host.prepareWebgpu);
      else if (name === "wasm") result = await tryWasm(wasmThreads, options.wasmPaths, host.wasm);
      else result = await startCpu();
    } catch (err) {
      result = `${name} failed: ${(err as Error).message.split("\n")[0]}`;
    }
    if (typeof result === "string") {
      skipped.push({ name, reason: result });
      continue;
    }
    await tf.ready();
    const info: BackendInfo = {
      name,
      provider: result.provider,
      reason:
        list.length === 1
          ? "requested"
          : skipped.length === 0
            ? "first choice"
            : "first that started",
      skipped,
      ...(result.adapter ? { adapter: result.adapter } : {}),
      ...(result.threads !== undefined ? { threads: result.threads, simd: result.simd } : {}),
      ...(result.note ? { note: result.note } : {}),
    };
    const log = options.log ?? true;
    if (log) {
      const skippedText = skipped.length
        ? `; skipped ${skipped.map((s) => `${s.name} (${s.reason})`).join(", ")}`
        : "";
      const detail = info.adapter
        ? ` on ${info.adapter}`
        : info.threads !== undefined
          ? ` (${info.threads} thread${info.threads === 1 ? "" : "s"}${info.simd ? ", SIMD" : ""}${info.note ? `: ${info.note}` : ""})`
          : "";
      const line = `[sit] backend: ${name} via ${info.provider}${detail}${skippedText}`;
      (typeof log === "function" ? log : console.info)(line);
    }
    return info;
  }
  if (list.length === 1) {
    const name = list[0];
    const reason = skipped[0]?.reason ?? "unknown reason";
    // Name the package only when a package is what is missing; otherwise say what is.
    const hint = /not installed|failed to load|did not register/.test(reason)
      ? `Install it with: ${INSTALL_HINT[name]}`
      : name === "webgpu"
        ? "WebGPU needs a GPU driver with Vulkan, Metal or D3D12, or Mesa ≥ 25 (lavapipe) with allowSoftwareAdapter"
        : `Check the installation: ${INSTALL_HINT[name]}`;
    throw new BackendError(`backend "${name}" is not available: ${reason}. ${hint}`);
  }
  throw new BackendError(
    `no backend could start: ${skipped.map((s) => `${s.name}: ${s.reason}`).join("; ")}`,
  );
}
