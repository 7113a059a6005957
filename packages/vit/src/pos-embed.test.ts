import * as tf from "@tensorflow/tfjs";
import { Rng } from "@sit/core";
import { expectClose } from "@sit/testing";
import { describe, expect, it } from "vitest";
import { interpolatePosEmbed } from "./pos-embed";
import { VisionTransformer } from "./vision-transformer";

// A 3×3 grid of D = 2 values sin(1.3·k + 0.7·c) (k = row-major cell, c = channel), resampled by
// PyTorch 1.13 exactly as DINO/SiT's interpolate_pos_encoding does:
// F.interpolate(grid, scale_factor=((oh + 0.1)/3, (ow + 0.1)/3), mode="bicubic"), NHWC-flattened,
// evaluated in float64 on the float32 grid (PyTorch's float32 path rounds its sampling
// coordinates in float32 and lands up to 6e-7 away from these values).
const GRID = Array.from({ length: 9 }, (_, k) => [
  Math.sin(1.3 * k),
  Math.sin(1.3 * k + 0.7),
]).flat();
const TORCH: Record<string, number[]> = {
  "5x5": [
    -0.037847396, 0.78126129, 0.50414081, 0.97565238, 1.1314228, 1.0557104, 0.89233669, 0.32585275,
    0.49671468, -0.35346935, -0.42304, -0.13096783, -0.1764424, 0.11797659, 0.18295716, 0.426808,
    0.40303795, 0.40903595, 0.49742969, 0.3041196, -0.69168487, -1.0569433, -0.841086, -0.8328452,
    -0.88597946, -0.38361801, -0.25110353, 0.36135355, 0.33268713, 0.90184389, 0.26563529,
    -0.077590005, 0.0059989138, -0.26859836, -0.33962526, -0.47308688, -0.42566131, -0.31514279,
    -0.4034908, -0.11423604, 1.2037938, 1.0696759, 0.95907539, 0.51257078, 0.45946963, -0.32015101,
    -0.39424126, -0.90969765, -1.0179991, -1.1999968,
  ],
  "2x2": [
    -0.030108038, 0.37264577, 0.56479448, 0.29723856, 0.27794785, -0.017967522, -0.4292723,
    -0.40091561,
  ],
  "4x6": [
    -0.059560178, 0.74249161, 0.29497034, 0.85866285, 0.90335464, 1.0804145, 1.0972342, 0.78629018,
    0.7341197, 0.10851993, 0.48329345, -0.34955232, -0.63359851, -0.61832085, -0.55839314,
    -0.41856146, -0.44759131, -0.092957303, -0.11501019, 0.29074589, 0.26332129, 0.5149601,
    0.51642286, 0.66208324, -0.19039369, -0.63049568, -0.36078805, -0.62456479, -0.65962743,
    -0.6328908, -0.65001134, -0.33418733, -0.31488271, 0.12135475, -0.086292985, 0.42767738,
    1.1406527, 1.0019078, 0.95698459, 0.62875344, 0.6744264, 0.016017528, 0.053093802, -0.62887598,
    -0.57261351, -0.93542298, -0.99010974, -1.1347173,
  ],
};
const CLS = [0.25, -0.5];

describe("position-embedding interpolation", () => {
  it.each([
    ["5x5", [5, 5]],
    ["2x2", [2, 2]],
    ["4x6", [4, 6]],
  ] as const)(
    "matches PyTorch's DINO-style bicubic resampling to %s, CLS entry kept",
    (key, to) => {
      const pos = tf.tensor3d([...CLS, ...GRID], [1, 10, 2]);
      const out = interpolatePosEmbed(pos, [3, 3], [to[0], to[1]]);
      expect(out.shape).toEqual([1, 1 + to[0] * to[1], 2]);
      expectClose(out, [...CLS, ...TORCH[key]], 1e-5, key);
      tf.dispose([pos, out]);
    },
  );

  it("is the identity at the trained size, inside a model as well", () => {
    const model = new VisionTransformer({
      imgSize: 12,
      patchSize: 4,
      embedDim: 2,
      depth: 1,
      numHeads: 1,
      rng: Rng.seed(1),
    });
    model.posEmbed.assign(tf.tensor3d([...CLS, ...GRID], [1, 10, 2]));
    expect(model.positionEmbedding([3, 3])).toBe(model.posEmbed);
    const resized = model.positionEmbedding([5, 5]);
    expectClose(resized, [...CLS, ...TORCH["5x5"]], 1e-5, "model 5x5");
    tf.dispose(resized);
    model.dispose();
  });

  it("lets a model built at 32 px run at 48 and 16 px, with gradients reaching pos_embed", () => {
    const model = new VisionTransformer({
      imgSize: 32,
      patchSize: 8,
      embedDim: 16,
      depth: 1,
      numHeads: 2,
      rng: Rng.seed(2),
    });
    for (const size of [48, 16]) {
      const images = tf.randomNormal([2, size, size, 3], 0, 1, "float32", 3);
      const out = model.forward(images);
      const n = (size / 8) ** 2;
      expect(out.tokens.shape).toEqual([2, 1 + n, 16]);
      expect(out.patchTokens.shape).toEqual([2, n, 16]);
      const { grads } = tf.variableGrads(
        () => tf.sum(tf.square(model.forward(images).tokens)) as tf.Scalar,
        [model.posEmbed],
      );
      const g = grads[model.posEmbed.name];
      expect(g.shape).toEqual([1, 17, 16]);
      expect(tf.sum(tf.abs(g)).dataSync()[0]).toBeGreaterThan(0);
      tf.dispose([images, out.tokens, out.cls, out.patchTokens, g]);
    }
    model.dispose();
  });
});
