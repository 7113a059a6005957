import * as tf from "@tensorflow/tfjs";
import { ConfigError, Rng, ShapeError } from "@sit/core";
import { TEST_BACKENDS, withBackend } from "@sit/testing";
import { describe, expect, it } from "vitest";
import { sincosPosEmbed2d } from "./sincos";
import { toTokenMask } from "./token-mask";
import { TransformerDecoder } from "./transformer-decoder";

const decoder = (seed = 0) =>
  new TransformerDecoder({
    inDim: 12,
    gridSize: [2, 3],
    patchSize: 2,
    embedDim: 16,
    depth: 2,
    numHeads: 2,
    rng: Rng.seed(seed),
  });

// MAE's get_2d_sincos_pos_embed(8, 3, cls_token=True) (numpy, float64), rows 0, 1 and 5.
const MAE_SINCOS_ROWS: Record<number, number[]> = {
  0: [0, 0, 0, 0, 0, 0, 0, 0],
  1: [0, 0, 1, 1, 0, 0, 1, 1],
  5: [0.84147098, 0.0099998333, 0.54030231, 0.99995, 0.84147098, 0.0099998333, 0.54030231, 0.99995],
  9: [
    0.90929743, 0.019998667, -0.41614684, 0.99980001, 0.90929743, 0.019998667, -0.41614684,
    0.99980001,
  ],
};

describe("sincosPosEmbed2d", () => {
  it("matches MAE's fixed 2-D sin-cos table (column in the first half, row in the second)", () => {
    const table = sincosPosEmbed2d(8, 3, 3, true);
    expect(table.length).toBe(10 * 8);
    for (const [row, values] of Object.entries(MAE_SINCOS_ROWS))
      values.forEach((v, c) => {
        expect(table[Number(row) * 8 + c]).toBeCloseTo(v, 6);
      });
    // cell (row 0, col 2) is row 3 of the table: column 2 in the first half
    expect(table[3 * 8]).toBeCloseTo(0.90929743, 6);
    expect(table[3 * 8 + 4]).toBe(0);
    expect(() => sincosPosEmbed2d(6, 2, 2, false)).toThrow(ConfigError);
  });
});

describe("toTokenMask", () => {
  it("accepts bool / 0-1 tensors, rows and flat arrays, and rejects anything else", () => {
    const rows = [
      [true, false, true],
      [false, false, true],
    ];
    const fromRows = toTokenMask(rows, 2, 3);
    const fromTensor = toTokenMask(tf.tensor2d(rows.flat().map(Number), [2, 3], "bool"), 2, 3);
    const fromFlat = toTokenMask(Uint8Array.from([1, 0, 1, 0, 0, 1]), 2, 3);
    for (const m of [fromRows, fromTensor, fromFlat])
      expect(Array.from(m.dataSync())).toEqual([1, 0, 1, 0, 0, 1]);
    expect(() => toTokenMask([[1, 0]], 2, 3)).toThrow(ShapeError);
    expect(() => toTokenMask(tf.zeros([2, 4]), 2, 3)).toThrow(/expected shape \[2, 3\]/);
    expect(() => toTokenMask([0, 1, 2, 0, 0, 0], 2, 3)).toThrow(/only 0\/1/);
    tf.dispose([fromRows, fromTensor, fromFlat]);
  });
});

describe.each(TEST_BACKENDS)("TransformerDecoder on %s", (backend) => {
  it("decodes to patches and an image; masked inputs are replaced by the mask token", async () => {
    await withBackend(backend, () => {
      const dec = decoder();
      // own parameters first, then children, as PyTorch's state_dict
      expect(Object.keys(dec.stateDict()).slice(0, 4)).toEqual([
        "mask_token",
        "decoder_pos_embed",
        "decoder_embed.weight",
        "decoder_embed.bias",
      ]);
      expect(dec.decoderPosEmbed.trainable).toBe(false);
      const rng = Rng.seed(3);
      const tokens = tf.tensor3d(rng.fillNormal(new Float32Array(2 * 7 * 12)), [2, 7, 12]); // CLS + 6
      const mask = [
        [1, 0, 0, 1, 0, 0],
        [0, 1, 0, 0, 1, 0],
      ];
      const out = dec.forward(tokens, { mask });
      expect(out.patches.shape).toEqual([2, 6, 2 * 2 * 3]);
      expect(out.image.shape).toEqual([2, 4, 6, 3]);
      // Changing what sits at masked positions changes nothing.
      const noise = tf.mul(tf.tensor3d([0, ...mask[0], 0, ...mask[1]], [2, 7, 1]), 100);
      const other = dec.forward(tf.add(tokens, noise), { mask });
      expect(tf.max(tf.abs(tf.sub(other.patches, out.patches))).dataSync()[0]).toBeLessThan(1e-5);
      // Without the mask it does change.
      const unmasked = dec.forward(tf.add(tokens, noise));
      expect(tf.max(tf.abs(tf.sub(unmasked.patches, out.patches))).dataSync()[0]).toBeGreaterThan(
        1e-3,
      );
      // MAE's layout: only the visible tokens, scattered back by the mask, gives the same result.
      const visibleRows = [
        [0, 2, 3, 5, 6], // CLS + unmasked patches 1, 2, 4, 5 of row 0
        [0, 1, 3, 4, 6],
      ];
      const data = tokens.arraySync() as number[][][];
      const visible = tf.tensor3d(visibleRows.map((r, b) => r.map((i) => data[b][i])));
      const fromVisible = dec.forward(visible, { mask, layout: "visible" });
      expect(tf.max(tf.abs(tf.sub(fromVisible.patches, out.patches))).dataSync()[0]).toBeLessThan(
        1e-5,
      );
      tf.dispose([
        tokens,
        noise,
        visible,
        out as never,
        other as never,
        unmasked as never,
        fromVisible as never,
      ]);
      dec.dispose();
    });
  });

  it("learns: the reconstruction loss falls over a few SGD steps, without leaking tensors", async () => {
    await withBackend(backend, () => {
      const dec = decoder(1);
      const rng = Rng.seed(4);
      const tokens = tf.tensor3d(rng.fillNormal(new Float32Array(4 * 6 * 12)), [4, 6, 12]);
      const target = tf.tensor4d(
        rng.fillNormal(new Float32Array(4 * 4 * 6 * 3), 0, 0.5),
        [4, 4, 6, 3],
      );
      const mask = tf.tensor2d(
        Array.from({ length: 24 }, (_, i) => (i % 3 === 0 ? 1 : 0)),
        [4, 6],
      );
      const opt = tf.train.sgd(0.05);
      const step = () =>
        tf.tidy(() => {
          const loss = opt.minimize(
            () =>
              tf.mean(tf.square(tf.sub(dec.forward(tokens, { mask }).image, target))) as tf.Scalar,
            true,
            dec.parameters().filter((p) => p.trainable),
          )!;
          return loss.dataSync()[0];
        });
      const first = step();
      const before = tf.memory().numTensors;
      let last = first;
      for (let i = 0; i < 15; i++) last = step();
      expect(tf.memory().numTensors).toBe(before);
      expect(last).toBeLessThan(first * 0.9);
      tf.dispose([tokens, target, mask]);
      opt.dispose();
      dec.dispose();
    });
  });
});

describe("TransformerDecoder input checks", () => {
  it("rejects bad configurations and mis-shaped tokens or masks", () => {
    expect(
      () =>
        new TransformerDecoder({
          inDim: 8,
          gridSize: 2,
          patchSize: 2,
          embedDim: 16,
          numHeads: 3,
          rng: Rng.seed(0),
        }),
    ).toThrow(/numHeads: expected a divisor of embedDim 16, got 3/);
    expect(
      () =>
        new TransformerDecoder({
          inDim: 8,
          gridSize: 2,
          patchSize: 2,
          embedDim: 18,
          numHeads: 2,
          rng: Rng.seed(0),
        }),
    ).toThrow(/multiple of 4/);
    expect(
      () =>
        new TransformerDecoder({ inDim: 8, gridSize: 2, patchSize: 2, depth: 0, rng: Rng.seed(0) }),
    ).toThrow(/depth/);
    const dec = decoder();
    expect(() => dec.forward(tf.zeros([2, 5, 12]))).toThrow(
      /expected 6 patch tokens \(or 7 with CLS\)/,
    );
    expect(() => dec.forward(tf.zeros([2, 6, 10]))).toThrow(/tokens: expected \[B, T, 12\]/);
    expect(() => dec.forward(tf.zeros([2, 4, 12]), { layout: "visible" })).toThrow(
      /required with layout "visible"/,
    );
    expect(() =>
      dec.forward(tf.zeros([2, 4, 12]), {
        layout: "visible",
        mask: [
          [1, 1, 0, 0, 0, 0],
          [1, 0, 0, 0, 0, 0],
        ],
      }),
    ).toThrow(/same number of visible tokens/);
    dec.dispose();
  });
});
