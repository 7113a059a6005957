import * as tf from "@tensorflow/tfjs";
import { initBackend, type BackendName } from "@sit/core";

/** Backends every portable spec runs on in CI (webgpu joins when SIT_TEST_WEBGPU=1 and Mesa is present). */
export const TEST_BACKENDS: BackendName[] =
  process.env.SIT_TEST_WEBGPU === "1" ? ["cpu", "wasm", "webgpu"] : ["cpu", "wasm"];

/** Run `fn` with `name` as the active backend, restoring the previous one afterwards. */
export async function withBackend<T>(name: BackendName, fn: () => T | Promise<T>): Promise<T> {
  const previous = tf.getBackend();
  await initBackend(name, { log: false, allowSoftwareAdapter: true });
  try {
    return await fn();
  } finally {
    if (previous && previous !== name) await tf.setBackend(previous);
  }
}
