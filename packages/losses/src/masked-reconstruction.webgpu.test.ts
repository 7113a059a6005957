import * as tf from "@tensorflow/tfjs";
import { Rng } from "@sit/core";
import { setWebgpuFusedHeads } from "@sit/kernels";
import { expectClose, useWebgpu } from "@sit/testing";
import { afterAll, describe, expect, it } from "vitest";
import { maskedReconstructionLoss } from "./masked-reconstruction";

afterAll(async () => {
  setWebgpuFusedHeads(true);
  await tf.setBackend("cpu");
});

const [B, H, W, C] = [3, 10, 9, 3];

function normal(shape: number[], seed: number): tf.Tensor {
  const n = shape.reduce((p, q) => p * q, 1);
  return tf.tensor(Rng.seed(seed).fillNormal(new Float32Array(n), 0, 1), shape);
}

/** A 0/1 mask (about a third set), or all zeros. */
function mask(channels: number, empty: boolean): tf.Tensor {
  const n = B * H * W * channels;
  const u = Rng.seed(9).fillNormal(new Float32Array(n), 0, 1);
  return tf.tensor(
    u.map((v) => (!empty && v > 0.4 ? 1 : 0)),
    [B, H, W, channels],
  );
}

/** Loss, then the gradients of pred and target. */
function run(type: "l1" | "l2", m: tf.Tensor): tf.Tensor[] {
  const pred = normal([B, H, W, C], 1);
  const target = normal([B, H, W, C], 2);
  const out = tf.tidy(() => {
    const f = (p: tf.Tensor, t: tf.Tensor) => maskedReconstructionLoss(p, t, m, { type });
    const { value, grads } = tf.valueAndGrads(f)([pred, target]);
    return [value, ...grads];
  });
  tf.dispose([pred, target]);
  return out;
}

async function compare(type: "l1" | "l2", m: tf.Tensor) {
  setWebgpuFusedHeads(false);
  const portable = run(type, m);
  setWebgpuFusedHeads(true);
  const fused = run(type, m);
  const [p, f] = await Promise.all(
    [portable, fused].map((ts) => Promise.all(ts.map((t) => t.data() as Promise<Float32Array>))),
  );
  tf.dispose([...portable, ...fused]);
  expectClose(f[0], p[0], 1e-5, "loss", 1e-7);
  expectClose(f[1], p[1], 1e-4, "grad pred", 1e-7);
  expectClose(f[2], p[2], 1e-4, "grad target", 1e-7);
  return f[0][0];
}

describe("the masked reconstruction loss on webgpu (fused kernel behind @sit/core's seam)", () => {
  it.for([
    ["L1, per-pixel mask", "l1", 1, false],
    ["L2, per-pixel mask", "l2", 1, false],
    ["L1, per-element mask", "l1", C, false],
    ["L1, empty mask", "l1", 1, true],
  ] as const)(
    "matches the portable loss: value 1e-5, gradients 1e-4 (%s)",
    { timeout: 240_000 },
    async ([, type, channels, empty], ctx) => {
      if (!(await useWebgpu(ctx))) return;
      const m = mask(channels, empty);
      const value = await compare(type, m);
      if (empty) expect(value).toBe(0);
      else expect(value).toBeGreaterThan(0);
      m.dispose();
    },
  );

  it("takes one tensor as both prediction and target (read-only bindings may alias)", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const m = mask(1, false);
    const x = normal([B, H, W, C], 5);
    // Zeros are also what an invalid command buffer leaves: check that WebGPU validated it.
    const device = (
      tf.backend() as unknown as {
        device: {
          pushErrorScope(f: string): void;
          popErrorScope(): Promise<{ message: string } | null>;
        };
      }
    ).device;
    device.pushErrorScope("validation");
    const out = tf.tidy(() => {
      const { value, grads } = tf.valueAndGrads((p: tf.Tensor) =>
        maskedReconstructionLoss(p, p, m, { type: "l2" }),
      )([x]);
      return [value, grads[0]];
    });
    const [value, grad] = await Promise.all(out.map((t) => t.data()));
    expect((await device.popErrorScope())?.message ?? null).toBeNull();
    expect(value[0]).toBe(0);
    expect(Math.max(...grad.map(Math.abs))).toBe(0);
    tf.dispose([...out, x, m]);
  });

  it("is one tfjs kernel each way and leaks nothing", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const m = mask(1, false);
    const info = await tf.profile(() => {
      tf.dispose(run("l1", m));
    });
    expect(info.kernels.map((k) => k.name).filter((k) => k.startsWith("Sit"))).toEqual([
      "SitMaskedLoss",
      "SitMaskedLossGrad",
    ]);
    const settled = async () => {
      const l = run("l1", m);
      await l[0].data();
      tf.dispose(l);
      return tf.memory().numTensors;
    };
    const before = await settled();
    for (let i = 0; i < 3; i++) tf.dispose(run("l1", m));
    expect(await settled()).toBe(before);
    m.dispose();
  });
});
