import * as tf from "@tensorflow/tfjs";
import {
  type BackendHost,
  type BackendInfo,
  type BackendName,
  type InitBackendOptions,
  initBackendOn,
} from "@sit/core";
import { tryRequire } from "./backend-require";
import { NODE_WASM_HOOKS, defaultWasmThreads } from "./backend-wasm-node";
import { prepareDawn } from "./backend-webgpu-node";

// Node's runtime for the one backend selection of @sit/core (backend.ts).

async function startTensorflow(): Promise<{ provider: string } | string> {
  const reasons: string[] = [];
  for (const id of ["@tensorflow/tfjs-node-gpu", "@tensorflow/tfjs-node"]) {
    const r = tryRequire(id);
    if (r.ok && tf.findBackendFactory("tensorflow")) {
      if (await tf.setBackend("tensorflow")) return { provider: id };
      reasons.push(`${id} loaded but the tensorflow backend did not start`);
    } else if (!r.ok) reasons.push(r.reason);
  }
  return reasons.join("; ");
}

const NODE_HOST: BackendHost = {
  auto: ["tensorflow", "webgpu", "wasm", "cpu"],
  setting: (name) => process.env[name],
  defaultWasmThreads,
  startTensorflow,
  prepareWebgpu: prepareDawn,
  webgpuProvider: "webgpu (Dawn) + @tensorflow/tfjs-backend-webgpu",
  wasm: NODE_WASM_HOOKS,
};

/**
 * Pick and start the best available TensorFlow.js backend under Node.
 *
 * Order unless told otherwise: `tensorflow` (tfjs-node-gpu, then tfjs-node) → `webgpu` (a hardware
 * adapter through Dawn, the `webgpu` package) → `wasm` (binaries from node_modules, threads on the
 * available cores) → `cpu`. `"auto"` (or no argument) means the `SIT_BACKEND` environment variable
 * when it is set, else that order; a backend named in the argument wins over `SIT_BACKEND`. Naming
 * one backend makes it the only candidate: if it cannot start, this throws and says which package
 * to install. Returns what was chosen and why the others were skipped. The same selection as
 * `initBackend` of `@sit/core` (a web page's), with Node's ways to start each backend.
 *
 * Nothing is registered with tfjs before this runs: without it, tfjs computes on its cpu backend.
 */
export async function initBackend(
  preference?: BackendName | "auto" | BackendName[],
  options: InitBackendOptions = {},
): Promise<BackendInfo> {
  return initBackendOn(NODE_HOST, preference, options);
}
