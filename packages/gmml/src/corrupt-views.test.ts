import * as tf from "@tensorflow/tfjs";
import { Rng } from "@sit/core";
import { useWebgpu } from "@sit/testing";
// @sit/kernels plugs the webgpu pixel-sources kernel into @sit/core when imported.
import { PIXEL_SOURCES_KERNEL } from "@sit/kernels";
import { afterAll, describe, expect, it } from "vitest";
import { applyCorruptionPlan } from "./corruption-plan";
import { applyPixelSources, corruptViews, corruptViewsStacked } from "./corrupt-views";
import { GmmlMasker } from "./gmml-masker";

/** Both tests' inputs on `backend`: a masker with every fill, two views of 5 images, an Rng. */
async function fixture(backend: string, seed: number) {
  await tf.setBackend(backend);
  const masker = new GmmlMasker({ fill: ["zeros", "noise", "shuffle"], patchSize: 4 });
  const data = Rng.seed(3).fillNormal(new Float32Array(2 * 5 * 16 * 16 * 3), 0, 1);
  const views = [0, 1].map((i) =>
    tf.tensor4d(data.subarray(i * 3840, (i + 1) * 3840), [5, 16, 16, 3]),
  );
  const rng = Rng.seed(seed);
  const before = tf.memory().numTensors;
  return { masker, views, rng, before, data };
}

async function run(backend: string, seed: number) {
  const { masker, views, rng, before } = await fixture(backend, seed);
  let out = { corrupted: [], masks: [], tokenMasks: [] } as ReturnType<typeof corruptViews>;
  const profile = await tf.profile(() => {
    out = corruptViews(masker, views, rng);
  });
  const kernels = profile.kernels.map((k) => k.name);
  // On webgpu: one dispatch per view, no readback of the views, no other kernel.
  if (backend === "webgpu") expect(kernels).toEqual([PIXEL_SOURCES_KERNEL, PIXEL_SOURCES_KERNEL]);
  expect(tf.memory().numTensors).toBe(before + 6);
  const read = async (ts: tf.Tensor[]) =>
    Promise.all(ts.map(async (t) => Array.from(await t.data())));
  const result = {
    corrupted: await read(out.corrupted),
    masks: await read(out.masks),
    tokenMasks: await read(out.tokenMasks),
    rng: rng.state(),
  };
  tf.dispose([...views, ...out.corrupted, ...out.masks, ...out.tokenMasks]);
  return result;
}

describe("corruptViews", () => {
  afterAll(async () => {
    await tf.setBackend("cpu");
  });

  it("gives exactly the cpu result on webgpu (applied on the GPU from CPU-drawn masks)", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    for (const seed of [1, 2]) {
      const gpu = await run("webgpu", seed);
      const cpu = await run("cpu", seed);
      expect(gpu).toEqual(cpu);
    }
  });
});

describe("corruptViewsStacked", () => {
  afterAll(async () => {
    await tf.setBackend("cpu");
  });

  /** The stacked result on `backend`, read back, and the Rng's state after it. */
  async function stacked(backend: string, seed: number) {
    const { masker, views, rng, before, data } = await fixture(backend, seed);
    let out = {} as ReturnType<typeof corruptViewsStacked>;
    const profile = await tf.profile(() => {
      out = corruptViewsStacked(masker, views, rng);
    });
    // On webgpu: the clean views' concat and one pixel-sources dispatch for both views.
    if (backend === "webgpu")
      expect(profile.kernels.map((k) => k.name)).toEqual(["Concat", PIXEL_SOURCES_KERNEL]);
    expect(tf.memory().numTensors).toBe(before + 5);
    expect(out.corrupted.shape).toEqual([10, 16, 16, 3]);
    expect(out.masks.shape).toEqual([10, 16, 16, 1]);
    const result = {
      clean: Array.from(await out.clean.data()),
      corrupted: Array.from(await out.corrupted.data()),
      masks: Array.from(await out.masks.data()),
      tokenMasks: await Promise.all(out.tokenMasks.map(async (t) => Array.from(await t.data()))),
      rng: rng.state(),
    };
    tf.dispose([...views, out.clean, out.corrupted, out.masks, ...out.tokenMasks]);
    return { result, data };
  }

  it("gives exactly corruptViews's per-view cpu result, stacked, on webgpu and cpu", async (ctx) => {
    for (const seed of [1, 2]) {
      const perView = await run("cpu", seed);
      const cpu = await stacked("cpu", seed);
      const expected = {
        clean: Array.from(cpu.data),
        corrupted: perView.corrupted.flat(),
        masks: perView.masks.flat(),
        tokenMasks: perView.tokenMasks,
        rng: perView.rng,
      };
      expect(cpu.result).toEqual(expected);
      if (!(await useWebgpu(ctx))) continue;
      expect((await stacked("webgpu", seed)).result).toEqual(expected);
    }
  });
});

describe("applyPixelSources", () => {
  it("portable: one gather gives exactly the host application of the plan", async () => {
    await tf.setBackend("cpu");
    const masker = new GmmlMasker({ fill: ["zeros", "noise", "shuffle"], patchSize: 4 });
    const shape: [number, number, number, number] = [5, 16, 16, 3];
    const data = Rng.seed(4).fillNormal(new Float32Array(5 * 16 * 16 * 3), 0, 1);
    const plan = masker.plan(shape, Rng.seed(5));
    expect(plan.noise.length).toBeGreaterThan(0);
    const images = tf.tensor4d(data, shape);
    const out = applyPixelSources(images, plan.source, plan.noise);
    expect(await out.data()).toEqual(applyCorruptionPlan({ data, shape }, plan).data);
    tf.dispose([images, out]);
  });

  it("checks its arguments", () => {
    const images = tf.zeros([1, 2, 2, 3]) as tf.Tensor4D;
    expect(() => applyPixelSources(images, new Int32Array(3), new Float32Array(0))).toThrow(
      /source/,
    );
    expect(() =>
      applyPixelSources(images, new Int32Array(4).fill(-2), new Float32Array(0)),
    ).toThrow(/source\[0\]/);
    expect(() => applyPixelSources(images, new Int32Array(4), new Float32Array(2))).toThrow(
      /noise/,
    );
    images.dispose();
  });
});
