import * as tf from "@tensorflow/tfjs";
import { Rng, pixelSourcesKernel } from "@sit/core";
import { afterAll, describe, expect, it } from "vitest";
import { countBindGroups, useWebgpu } from "./testing";
import "./flat-register";
import { PIXEL_SOURCES_KERNEL, webgpuPixelSources } from "./gmml";

const SHAPE: [number, number, number, number] = [3, 8, 6, 3];

/** A source map with every kind of entry: kept, moved (shuffle/replacement), zero and noise pixels. */
function drawCase(): { images: Float32Array; source: Int32Array; noise: Float32Array } {
  const rng = Rng.seed(9);
  const [B, H, W, C] = SHAPE;
  const pixels = B * H * W;
  const images = rng.fillNormal(new Float32Array(pixels * C), 0, 1);
  const source = new Int32Array(pixels);
  let slots = 0;
  for (let p = 0; p < pixels; p++) {
    const kind = rng.int(0, 4);
    source[p] = kind === 0 ? p : kind === 1 ? rng.int(0, pixels) : kind === 2 ? -1 : -2 - slots++;
  }
  return { images, source, noise: rng.fillNormal(new Float32Array(slots * C), 0, 1) };
}

/** The definition, written out on the host. */
function expected({ images, source, noise }: ReturnType<typeof drawCase>): Float32Array {
  const C = SHAPE[3];
  const out = new Float32Array(images.length);
  source.forEach((s, p) => {
    for (let c = 0; c < C; c++)
      out[p * C + c] = s >= 0 ? images[s * C + c] : s === -1 ? 0 : noise[(-2 - s) * C + c];
  });
  return out;
}

describe("webgpuPixelSources (GMML corruption where the images live)", () => {
  afterAll(async () => {
    await tf.setBackend("cpu");
  });

  it("is plugged into @sit/core's pixel-sources seam for webgpu", () => {
    expect(pixelSourcesKernel("webgpu")).toBe(webgpuPixelSources);
  });

  it("webgpu: one dispatch gives exactly the definition, as one tfjs kernel, without leaks", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const c = drawCase();
    const images = tf.tensor4d(c.images, SHAPE);
    const before = tf.memory().numTensors;
    let out: tf.Tensor | undefined;
    const profile = await tf.profile(() => {
      out = webgpuPixelSources(images, c.source, c.noise);
    });
    expect(profile.kernels.map((k) => k.name)).toEqual([PIXEL_SOURCES_KERNEL]);
    expect(tf.memory().numTensors).toBe(before + 1);
    expect(await (out as tf.Tensor).data()).toEqual(expected(c));
    // No noise at all (an empty noise buffer cannot be bound: the kernel pads it).
    const zerosOnly = c.source.map((s) => (s <= -2 ? -1 : s));
    const out2 = webgpuPixelSources(images, zerosOnly, new Float32Array(0));
    expect(await out2.data()).toEqual(expected({ ...c, source: zerosOnly }));
    tf.dispose([images, out as tf.Tensor, out2]);
  });

  it("webgpu: keeps its bind group from step to step (the same shapes, a new corruption each step)", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const c = drawCase();
    const images = tf.tensor4d(c.images, SHAPE);
    const step = async (shift: number) => {
      // Each step draws another plan: other sources, the same sizes.
      const source = c.source.map((s) => (s >= 0 ? (s + shift) % c.source.length : s));
      const out = webgpuPixelSources(images, source, c.noise);
      const values = await out.data();
      out.dispose();
      return { values, source };
    };
    await step(0);
    await step(1);
    const [groups, last] = await countBindGroups(() => step(2));
    expect(groups).toBe(0);
    expect(last.values).toEqual(expected({ ...c, source: last.source }));
    images.dispose();
  });
});
