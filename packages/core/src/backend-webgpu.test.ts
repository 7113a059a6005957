import * as tf from "@tensorflow/tfjs";
import { expectClose, loadFixture } from "@sit/testing";
import { afterAll, describe, expect, it } from "vitest";
import type { BackendInfo } from "./backend";
import { initBackend } from "./backend-node";
import { gelu } from "./nn/activations";
import { AdamW } from "./optim/adamw";

// WebGPU runs wherever Dawn finds an adapter: a GPU, or Mesa's lavapipe (CI installs Mesa ≥ 25
// with tools/ci/install-mesa.sh). Without one these specs skip and say why; with
// SIT_TEST_WEBGPU=1 (CI) a missing adapter is a failure instead.
let started: BackendInfo | string | undefined;
async function startWebgpu(): Promise<BackendInfo | string> {
  if (started === undefined) {
    try {
      started = await initBackend("webgpu", { allowSoftwareAdapter: true, log: false });
    } catch (err) {
      started = (err as Error).message;
    }
  }
  return started;
}

async function requireWebgpu(ctx: { skip: () => void }): Promise<BackendInfo | undefined> {
  const info = await startWebgpu();
  if (typeof info === "string") {
    if (process.env.SIT_TEST_WEBGPU === "1") throw new Error(`SIT_TEST_WEBGPU=1 but ${info}`);
    console.warn(`[skip] webgpu specs: ${info}`);
    ctx.skip();
    return undefined;
  }
  await tf.setBackend("webgpu");
  return info;
}

describe("initBackend('webgpu')", () => {
  afterAll(async () => {
    await tf.setBackend("cpu");
  });

  it("starts tfjs's webgpu backend through Dawn and computes with gradients", async (ctx) => {
    const info = await requireWebgpu(ctx);
    if (!info) return;
    expect(info.name).toBe("webgpu");
    expect(info.adapter?.length).toBeGreaterThan(0);
    expect(tf.getBackend()).toBe("webgpu");
    const a = tf.tensor2d([
      [1, 2],
      [3, 4],
    ]);
    expect(Array.from(await tf.matMul(a, a).data())).toEqual([7, 10, 15, 22]);
    const x = tf.tensor1d([-2, -0.5, 0, 0.7, 3]);
    const g = await tf
      .grad((t: tf.Tensor) => gelu(t).sum())(x)
      .data();
    // Φ(x) + x·φ(x) at the same points, computed in float64 with Python's math.erf.
    const expected = [-0.0852318, 0.1325049, 0.5, 0.9766141, 1.0119456];
    for (let i = 0; i < expected.length; i++) expect(g[i]).toBeCloseTo(expected[i], 5);
  });

  it("runs the flat AdamW and matches adamw.safetensors", async (ctx) => {
    if (!(await requireWebgpu(ctx))) return;
    const { tensors, metadata } = loadFixture("adamw.safetensors");
    const lr = metadata.lr as number[];
    const wd = metadata.wd_group0 as number[];
    const params: [string, tf.Variable][] = ["w", "bias", "pos"].map((n) => [
      n,
      tf.variable(tensors[`init.${n}`].clone()),
    ]);
    const opt = new AdamW(params, { lr: lr[0], weightDecay: wd[0], clipPerTensor: 3 });
    for (let s = 1; s <= 3; s++) {
      opt.setLr(lr[s - 1]).setWeightDecay(wd[s - 1]);
      opt.step(Object.fromEntries(params.map(([n]) => [n, tensors[`grad.step${s}.${n}`]])));
    }
    for (const [n, v] of params)
      expectClose(await v.data(), await tensors[`param.step3.${n}`].data(), 1e-5, n);
    opt.dispose();
    tf.dispose([...params.map(([, v]) => v), ...Object.values(tensors)]);
  });
});
