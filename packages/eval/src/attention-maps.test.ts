import * as tf from "@tensorflow/tfjs";
import { ConfigError, Rng } from "@sit/core";
import { VisionTransformer } from "@sit/vit";
import { describe, expect, it } from "vitest";
import {
  ATTENTION_SCALE_FLOOR,
  attentionMaps,
  attentionScaleMax,
  clsAttention,
  heatColor,
  overlayAttention,
  toRgbImages,
} from "./attention-maps";

function tinyVit() {
  return new VisionTransformer({
    imgSize: 8,
    patchSize: 4,
    inChans: 1,
    embedDim: 8,
    depth: 2,
    numHeads: 2,
    dropPathRate: 0.5,
    rng: Rng.seed(3),
  });
}

describe("clsAttention", () => {
  it("is row 0 of the block's attention probabilities without the CLS column, × N, in eval mode", async () => {
    const vit = tinyVit();
    const images = tf.randomUniform([3, 8, 8, 1], 0, 1, "float32", 7) as tf.Tensor4D;
    const before = tf.memory().numTensors;
    for (const [block, index] of [
      [0, 0],
      [-1, 1],
      [1, 1],
    ]) {
      const ratios = clsAttention(vit, images, block);
      expect(ratios.shape).toEqual([3, 2, 4]);
      // The reference: every block's probabilities [B, heads, 1+N, 1+N] from the backbone itself.
      vit.eval();
      const reference = tf.tidy(() => vit.forward(images, { attentions: true }).attentions![index]);
      vit.train();
      const probs = (await reference.array()) as number[][][][];
      reference.dispose();
      const got = (await ratios.array()) as number[][][];
      for (let b = 0; b < 3; b++)
        for (let h = 0; h < 2; h++)
          for (let p = 0; p < 4; p++)
            expect(got[b][h][p]).toBeCloseTo(4 * probs[b][h][0][p + 1], 5);
      ratios.dispose();
    }
    expect(vit.training).toBe(true);
    expect(tf.memory().numTensors).toBe(before);
    images.dispose();
    vit.dispose();
  });

  it("names a block outside the backbone", () => {
    const vit = tinyVit();
    const images = tf.zeros([1, 8, 8, 1]) as tf.Tensor4D;
    expect(() => clsAttention(vit, images, 2)).toThrow(/block/);
    expect(() => clsAttention(vit, images, -3)).toThrow(/block/);
    images.dispose();
    vit.dispose();
  });
});

describe("attention pictures", () => {
  it("attentionMaps: each head's map, then their mean", () => {
    // 1 image, 2 heads, 3 patches.
    const maps = attentionMaps(Float32Array.from([1, 2, 3, 3, 0, 1]), [1, 2, 3]);
    expect(maps).toHaveLength(1);
    expect([...maps[0][0]]).toEqual([1, 2, 3]);
    expect([...maps[0][1]]).toEqual([3, 0, 1]);
    expect([...maps[0][2]]).toEqual([2, 1, 2]);
    expect(() => attentionMaps(new Float32Array(5), [1, 2, 3])).toThrow(ConfigError);
  });

  it("attentionScaleMax never goes below the floor", () => {
    expect(attentionScaleMax([1.1, 0.9])).toBe(ATTENTION_SCALE_FLOOR);
    expect(attentionScaleMax([1, 7.5, 2])).toBe(7.5);
  });

  it("toRgbImages undoes the normalisation and clamps; grey repeats on RGB", () => {
    const stats = { mean: [0.5], std: [0.25] };
    const [img] = toRgbImages(Float32Array.from([0, 2, -4, 1]), [1, 2, 2, 1], stats);
    // x·0.25 + 0.5: 0.5, 1.0, −0.5 → 0, 0.75
    expect([...img.data]).toEqual([0.5, 0.5, 0.5, 1, 1, 1, 0, 0, 0, 0.75, 0.75, 0.75]);
    expect(() => toRgbImages(new Float32Array(8), [1, 2, 2, 2], null)).toThrow(ConfigError);
  });

  it("overlayAttention: grey picture under the heat colour, more opaque where attention is high", () => {
    // A 2×2 grey image (0.5) with a 1×2 patch grid: left patch at uniform (1×), right at the top (4×).
    const image = { data: new Float32Array(12).fill(0.5), height: 2, width: 2 };
    const out = overlayAttention(image, [1, 4], 1, 2, 4);
    const blend = (t: number) => {
      const a = 0.35 + 0.5 * t;
      return heatColor(t).map((c) => (1 - a) * 0.5 + a * c);
    };
    const left = blend(0.25);
    const right = blend(1);
    for (const [px, want] of [
      [0, left],
      [1, right],
      [2, left],
      [3, right],
    ] as const)
      for (let c = 0; c < 3; c++) expect(out.data[px * 3 + c]).toBeCloseTo(want[c], 6);
    // The top of the map is inferno's pale yellow.
    expect(heatColor(1)).toEqual([0.99, 1.0, 0.64]);
    expect(() => overlayAttention(image, [1, 2, 3], 1, 2, 4)).toThrow(/ratios/);
  });
});
