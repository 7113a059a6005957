// Test support (not exported): start tfjs's webgpu backend for the flat-kernel specs, or say why not.
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "@sit/core";

let started: string | null | undefined;

/**
 * Switch to webgpu (Dawn; Mesa's lavapipe allowed). Without an adapter the spec is skipped with the
 * reason printed — unless SIT_TEST_WEBGPU=1 (CI), where a missing adapter fails the spec.
 */
export async function requireWebgpu(ctx: { skip: () => void }): Promise<boolean> {
  if (started === undefined) {
    try {
      await initBackend("webgpu", { allowSoftwareAdapter: true, log: false });
      started = null;
    } catch (err) {
      started = (err as Error).message;
    }
  }
  if (typeof started === "string") {
    if (process.env.SIT_TEST_WEBGPU === "1") throw new Error(`SIT_TEST_WEBGPU=1 but ${started}`);
    console.warn(`[skip] webgpu flat-kernel specs: ${started}`);
    ctx.skip();
    return false;
  }
  await tf.setBackend("webgpu");
  return true;
}
