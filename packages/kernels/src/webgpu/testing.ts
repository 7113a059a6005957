// Test helpers for the webgpu kernels (not exported from the package).
import * as tf from "@tensorflow/tfjs";
import { Rng } from "@sit/core";
import { rawDispatchCount } from "./flat-buffers";

export { useWebgpu } from "@sit/testing";

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

/**
 * GPU dispatches (programs run by the webgpu backend, and this package's own directly encoded
 * dispatches) and tfjs kernels issued by `fn`.
 */
export async function countLaunches(
  fn: () => tf.Tensor | tf.Tensor[],
): Promise<{ dispatches: number; kernels: string[] }> {
  const backend = tf.backend() as unknown as { runWebGPUProgram: (...a: unknown[]) => unknown };
  const original = backend.runWebGPUProgram;
  let dispatches = 0;
  const raw0 = rawDispatchCount();
  backend.runWebGPUProgram = function (this: unknown, ...a: unknown[]) {
    dispatches++;
    return original.apply(this, a);
  };
  try {
    const info = await tf.profile(() => fn() as tf.TensorContainer as tf.Tensor);
    dispatches += rawDispatchCount() - raw0;
    return { dispatches, kernels: info.kernels.map((k) => k.name) };
  } finally {
    backend.runWebGPUProgram = original;
  }
}

/**
 * The bind groups the WebGPU device makes while `fn` runs, with `fn`'s result. A kernel whose
 * buffers and uniforms are those of an earlier call should make none (encode.ts keeps them).
 */
export async function countBindGroups<T>(fn: () => T | Promise<T>): Promise<[number, T]> {
  const device = (tf.backend() as unknown as { device: { createBindGroup(d: unknown): unknown } })
    .device;
  const create = device.createBindGroup;
  let made = 0;
  device.createBindGroup = (d: unknown) => {
    made++;
    return create.call(device, d);
  };
  try {
    const result = await fn();
    return [made, result];
  } finally {
    device.createBindGroup = create;
  }
}

/**
 * Tensors and GPU bytes in use after running `forward` once and reading its result: the read's
 * submit releases the buffers of tensors disposed while their commands pended, so two calls
 * around a loop of steps compare like with like (a leak test).
 */
export async function settledUsage(forward: () => tf.Tensor): Promise<[number, number]> {
  const t = tf.tidy(forward);
  await t.data();
  t.dispose();
  const memory = tf.memory() as tf.MemoryInfo & { numBytesInGPU: number };
  return [memory.numTensors, memory.numBytesInGPU];
}

/** A tensor of the given shape with N(0, std²) entries from a seeded `Rng`. */
export function fill(shape: number[], seed: number, std = 1): tf.Tensor {
  const n = shape.reduce((p, q) => p * q, 1);
  return tf.tensor(Rng.seed(seed).fillNormal(new Float32Array(n), 0, std), shape);
}

/**
 * `x` rounded to the nearest f16 value, ties to even (IEEE 754 binary16; ±inf from 65520 on,
 * subnormals below 2⁻¹⁴): the reference for the mixed-precision kernels.
 */
export function f16Round(x: number): number {
  if (!Number.isFinite(x) || x === 0) return x;
  const a = Math.abs(x);
  if (a >= 65520) return Math.sign(x) * Number.POSITIVE_INFINITY;
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  else if (2 ** (e + 1) <= a) e++;
  const ulp = 2 ** (Math.max(e, -14) - 10);
  const q = a / ulp; // exact: ulp is a power of two
  let r = Math.floor(q);
  const frac = q - r;
  if (frac > 0.5 || (frac === 0.5 && r % 2 === 1)) r++;
  return Math.sign(x) * r * ulp;
}
