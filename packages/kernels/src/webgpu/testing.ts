// Test helpers for the webgpu kernels (not exported from the package).
import * as tf from "@tensorflow/tfjs";
import { Rng, initBackend } from "@sit/core";

let started: string | true | undefined;

/**
 * Switch to the webgpu backend (Dawn; lavapipe allowed). Returns false — after printing why and
 * skipping the test — when there is no adapter; with SIT_TEST_WEBGPU=1 (CI) that is an error.
 */
export async function useWebgpu(ctx: { skip: () => void }): Promise<boolean> {
  if (started === undefined) {
    try {
      await initBackend("webgpu", { allowSoftwareAdapter: true, log: false });
      started = true;
    } catch (err) {
      started = (err as Error).message;
    }
  }
  if (started !== true) {
    if (process.env.SIT_TEST_WEBGPU === "1") throw new Error(`SIT_TEST_WEBGPU=1 but ${started}`);
    console.warn(`[skip] webgpu kernel specs: ${started}`);
    ctx.skip();
    return false;
  }
  await tf.setBackend("webgpu");
  return true;
}

/** Run `fn` on the cpu backend and return its results as plain arrays. */
export async function onCpu(fn: () => tf.Tensor[]): Promise<Float32Array[]> {
  const previous = tf.getBackend();
  await tf.setBackend("cpu");
  try {
    const out = tf.tidy(fn);
    const data = out.map((t) => t.dataSync() as Float32Array);
    tf.dispose(out);
    return data;
  } finally {
    await tf.setBackend(previous);
  }
}

/** GPU dispatches (programs run by the webgpu backend) and tfjs kernels issued by `fn`. */
export async function countLaunches(
  fn: () => tf.Tensor | tf.Tensor[],
): Promise<{ dispatches: number; kernels: string[] }> {
  const backend = tf.backend() as unknown as { runWebGPUProgram: (...a: unknown[]) => unknown };
  const original = backend.runWebGPUProgram;
  let dispatches = 0;
  backend.runWebGPUProgram = function (this: unknown, ...a: unknown[]) {
    dispatches++;
    return original.apply(this, a);
  };
  try {
    const info = await tf.profile(() => fn() as tf.TensorContainer as tf.Tensor);
    return { dispatches, kernels: info.kernels.map((k) => k.name) };
  } finally {
    backend.runWebGPUProgram = original;
  }
}

/** A tensor of the given shape with N(0, std²) entries from a seeded `Rng`. */
export function fill(shape: number[], seed: number, std = 1): tf.Tensor {
  const n = shape.reduce((p, q) => p * q, 1);
  return tf.tensor(Rng.seed(seed).fillNormal(new Float32Array(n), 0, std), shape);
}
