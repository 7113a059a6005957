import * as tf from "@tensorflow/tfjs";
import type { BackendName } from "@sit/core";
import { initBackend } from "@sit/core/node";

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

let webgpuStart: string | true | undefined;

/**
 * Switch to the webgpu backend (Dawn; Mesa's lavapipe allowed) for a webgpu-only spec. Without an
 * adapter the spec is skipped with the reason printed and `false` is returned — unless
 * SIT_TEST_WEBGPU=1, where a missing adapter fails the spec.
 */
export async function useWebgpu(ctx: { skip: () => void }): Promise<boolean> {
  if (webgpuStart === undefined) {
    try {
      await initBackend("webgpu", { allowSoftwareAdapter: true, log: false });
      webgpuStart = true;
    } catch (err) {
      webgpuStart = (err as Error).message;
    }
  }
  if (webgpuStart !== true) {
    if (process.env.SIT_TEST_WEBGPU === "1")
      throw new Error(`SIT_TEST_WEBGPU=1 but ${webgpuStart}`);
    console.warn(`[skip] webgpu specs: ${webgpuStart}`);
    ctx.skip();
    return false;
  }
  await tf.setBackend("webgpu");
  return true;
}

/**
 * How many `copyBufferToBuffer` commands the active webgpu backend's device records while `fn`
 * runs (awaited): the copies a flat kernel saves or makes.
 */
export async function countBufferCopies(fn: () => unknown): Promise<number> {
  const device = (tf.backend() as unknown as { device: { createCommandEncoder(): object } }).device;
  const proto = Object.getPrototypeOf(device.createCommandEncoder()) as {
    copyBufferToBuffer: (...a: unknown[]) => void;
  };
  const original = proto.copyBufferToBuffer;
  let n = 0;
  proto.copyBufferToBuffer = function (this: unknown, ...a: unknown[]) {
    n++;
    return original.apply(this, a);
  };
  try {
    await fn();
  } finally {
    proto.copyBufferToBuffer = original;
  }
  return n;
}
