import * as tf from "@tensorflow/tfjs";

// Starting tfjs's wasm backend, in a web page and under Node alike. What only Node needs (the
// binaries' folder in node_modules, threads from a worker file) comes in as WasmHooks from
// @sit/core/node (backend-wasm-node.ts).

/** @internal */
export type TfWasm = typeof import("@tensorflow/tfjs-backend-wasm");

/** Where tfjs finds its `.wasm` binaries: a URL prefix ending in `/`, or one URL per binary. */
export type WasmPaths =
  | string
  | Partial<
      Record<
        | "tfjs-backend-wasm.wasm"
        | "tfjs-backend-wasm-simd.wasm"
        | "tfjs-backend-wasm-threaded-simd.wasm",
        string
      >
    >;

/** What {@link startWasm} did. */
export interface WasmStart {
  threads: number;
  simd: boolean;
  /** Why fewer threads than asked for, if so. */
  note?: string;
}

/**
 * What a runtime adds to the wasm start. A web page needs nothing: tfjs finds its binaries where
 * `wasmPaths` says and starts threads itself when the page is cross-origin isolated.
 * @internal
 */
export interface WasmHooks {
  /** Where the binaries are when `wasmPaths` is not given (Node: node_modules). */
  defaultPaths?: () => WasmPaths | undefined;
  /** Start the threaded build (Node); true when it started, else why not. */
  startThreaded?: (tfwasm: TfWasm, threads: number) => Promise<true | string>;
}

let pathsConfigured = false;

/**
 * Importing @tensorflow/tfjs-backend-wasm registers "wasm" as tfjs's highest-priority backend, and
 * tfjs cannot start it synchronously: any tensor made before `initBackend` would then fail with
 * "backend 'wasm' has not yet been initialized". So the package loads here, on the first start,
 * and importing @sit/core registers nothing (its package.json says `sideEffects: false`).
 */
async function loadTfWasm(): Promise<TfWasm> {
  return import("@tensorflow/tfjs-backend-wasm");
}

/**
 * Run `start` while `navigator.hardwareConcurrency` reads `cores`. tfjs's threaded build gives
 * XNNPACK at most half the logical cores it is told of (it assumes two hyper-threads per core), so
 * a page on 2 cores got 1 thread whatever `setThreadsCount` asked for; Node's start lifts the same
 * cap through `os.cpus` (@sit/core/node). The real value is back as soon as the module has started.
 * @internal
 */
export async function withLogicalCores<T>(cores: number, start: () => Promise<T>): Promise<T> {
  const nav = (globalThis as { navigator?: object }).navigator;
  const own = nav ? Object.getOwnPropertyDescriptor(nav, "hardwareConcurrency") : undefined;
  if (!nav || (own && !own.configurable)) return start();
  Object.defineProperty(nav, "hardwareConcurrency", { configurable: true, get: () => cores });
  try {
    return await start();
  } finally {
    // The browser's value lives on Navigator.prototype: removing the own property uncovers it.
    if (own) Object.defineProperty(nav, "hardwareConcurrency", own);
    else delete (nav as { hardwareConcurrency?: number }).hardwareConcurrency;
  }
}

/**
 * Start tfjs's WASM backend: SIMD always (when the runtime supports it), and `threads` XNNPACK
 * threads through the threaded build (1 keeps the single-threaded SIMD build). Falls back to one
 * thread, with a note saying why, if the threaded build cannot start.
 * @internal
 */
export async function startWasm(
  threads: number,
  paths: WasmPaths | undefined,
  hooks: WasmHooks,
): Promise<WasmStart | string> {
  const tfwasm = await loadTfWasm();
  if (!tf.findBackendFactory("wasm")) return "@tensorflow/tfjs-backend-wasm did not register";
  const simd = (await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT")) as boolean;
  if (tf.findBackend("wasm")) {
    // Already started (by us or by the user): reuse it as it is.
    if (!(await tf.setBackend("wasm"))) return "the wasm backend did not start";
    const running = tfwasm.getThreadsCount();
    return running === threads
      ? { threads: running, simd }
      : {
          threads: running,
          simd,
          note: `already started with ${running}; threads apply before the first start`,
        };
  }
  // Paths must be set before the first start, and only once (tfjs refuses a second call after).
  const where = paths ?? hooks.defaultPaths?.();
  if (where !== undefined && !pathsConfigured) {
    tfwasm.setWasmPaths(where);
    pathsConfigured = true;
  }
  let note: string | undefined;
  if (threads > 1) {
    if (!simd) note = "the threaded build needs WebAssembly SIMD";
    else if (hooks.startThreaded) {
      try {
        const started = await hooks.startThreaded(tfwasm, threads);
        if (started === true) return { threads: tfwasm.getThreadsCount(), simd };
        note = started;
      } catch (err) {
        note = `the threaded build failed: ${(err as Error).message.split("\n")[0]}`;
      }
    } else if (await tf.env().getAsync("WASM_HAS_MULTITHREAD_SUPPORT")) {
      tfwasm.setThreadsCount(threads);
      if (await withLogicalCores(2 * threads, () => tf.setBackend("wasm")))
        return { threads: tfwasm.getThreadsCount(), simd };
      note = "the threaded build did not start";
    } else note = "threads need SharedArrayBuffer (a cross-origin-isolated page)";
  }
  tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", false);
  if (!(await tf.setBackend("wasm"))) return "the wasm backend did not start";
  return { threads: 1, simd, ...(note ? { note } : {}) };
}
