import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import { dirname, join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { type TfWasm, type WasmHooks, invalidArgument } from "@sit/core";

// Node only (@sit/core/node): where the wasm binaries are in node_modules, and multi-threaded
// wasm, which under Node relies on internals of @tensorflow/tfjs-backend-wasm, checked against
// this version only (the dependency is pinned to it).
const THREADS_VERIFIED_VERSION = "4.22.0";
/** Emscripten pre-spawns this many pthread workers in tfjs's threaded build; more cannot start. */
const MAX_THREADS = 8;

const requireHere = createRequire(import.meta.url);

/** Threads to ask for: `SIT_WASM_THREADS`, else the available cores (at most 8). */
export function defaultWasmThreads(): number {
  const env = process.env.SIT_WASM_THREADS;
  if (env !== undefined && env !== "") {
    const n = Number(env);
    if (!Number.isInteger(n) || n < 1 || n > MAX_THREADS)
      throw invalidArgument("SIT_WASM_THREADS", env, `an integer from 1 to ${MAX_THREADS}`);
    return n;
  }
  const cores =
    typeof os.availableParallelism === "function" ? os.availableParallelism() : os.cpus().length;
  return Math.max(1, Math.min(cores, MAX_THREADS));
}

function wasmPackageDir(): string | undefined {
  try {
    return dirname(requireHere.resolve("@tensorflow/tfjs-backend-wasm/package.json"));
  } catch {
    return undefined;
  }
}

/**
 * tfjs starts its pthread workers from `blob:` URLs, which Node's worker_threads refuse
 * (ERR_WORKER_PATH), and disables threads under Node for that reason. We write the worker script
 * to a file, make the worker load the module script from node_modules instead of a Blob, and
 * lift two Node-specific limits while the module starts (see {@link startThreaded}).
 */
function writeWorkerScript(pkgDir: string): { dir: string; path: string } {
  const workerModule = join(pkgDir, "wasm-out", "tfjs-backend-wasm-threaded-simd.worker.js");
  const mainScript = join(pkgDir, "wasm-out", "tfjs-backend-wasm-threaded-simd.js");
  readFileSync(mainScript); // fail early, with the path, if the package layout differs
  const { wasmWorkerContents } = requireHere(workerModule) as { wasmWorkerContents: string };
  const prelude =
    "// SiT.js: load the module script from its file (Node cannot import blob: URLs).\n" +
    `URL.createObjectURL = function () { return ${JSON.stringify(mainScript)}; };\n` +
    "URL.revokeObjectURL = function () {};\n";
  const dir = mkdtempSync(join(os.tmpdir(), "sit-wasm-"));
  const path = join(dir, "tfjs-backend-wasm-threaded-simd.worker.cjs");
  // tfjs escapes newlines the same way before wrapping the source in a Blob.
  writeFileSync(path, prelude + wasmWorkerContents.replace(/\n/g, "\\n"));
  return { dir, path };
}

interface EmscriptenThreads {
  PThread?: { runningWorkers?: { unref?: () => void }[] };
}

async function startThreaded(tfwasm: TfWasm, threads: number): Promise<true | string> {
  if (tfwasm.version_wasm !== THREADS_VERIFIED_VERSION)
    return `threads need @tensorflow/tfjs-backend-wasm ${THREADS_VERIFIED_VERSION} (found ${tfwasm.version_wasm})`;
  const pkgDir = wasmPackageDir();
  if (!pkgDir) return "@tensorflow/tfjs-backend-wasm/package.json cannot be resolved";
  const { dir, path } = writeWorkerScript(pkgDir);
  const createObjectURL = URL.createObjectURL;
  const cpus = os.cpus;
  try {
    tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", true);
    tfwasm.setThreadsCount(threads);
    URL.createObjectURL = ((obj: Blob) =>
      obj instanceof Blob && obj.type === "application/javascript"
        ? path
        : createObjectURL(obj)) as typeof URL.createObjectURL;
    // tfjs caps its pool at half the logical cores (assuming hyper-threading); report enough
    // cores for the requested count while the module initialises.
    const real = cpus();
    (os as { cpus: () => os.CpuInfo[] }).cpus = () =>
      Array.from({ length: 2 * threads }, (_, i) => real[i % real.length]);
    const ok = await tf.setBackend("wasm");
    if (!ok) return "the threaded build did not start";
    // Running pthread workers are ref'd by Emscripten and would keep Node alive forever.
    const backend = tf.findBackend("wasm") as unknown as { wasm?: EmscriptenThreads };
    for (const w of backend.wasm?.PThread?.runningWorkers ?? []) w.unref?.();
    return true;
  } finally {
    URL.createObjectURL = createObjectURL;
    (os as { cpus: () => os.CpuInfo[] }).cpus = cpus;
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Node's wasm start: the binaries from the package's folder in node_modules, whatever file
 * imported the backend (a bundle's own directory would otherwise be searched), and threads
 * through a worker file.
 */
export const NODE_WASM_HOOKS: WasmHooks = {
  defaultPaths() {
    const pkgDir = wasmPackageDir();
    return pkgDir ? `${join(pkgDir, "dist")}/` : undefined;
  },
  startThreaded,
};
