import * as tf from "@tensorflow/tfjs";
import { describe, expect, it } from "vitest";
import { ShapeError } from "../errors";
import { Linear } from "../nn/linear";
import { Module } from "../nn/module";
import { Rng } from "../rng";
import {
  conv2dWeightFromTorch,
  conv2dWeightToTorch,
  convTranspose2dWeightFromTorch,
  convTranspose2dWeightToTorch,
  linearWeightFromTorch,
  loadTorchStateDict,
  toTorchStateDict,
} from "./torch";

// Every element encodes its PyTorch index, so a misplaced element is identified exactly.
const code = (a: number, b: number, c: number, d: number) => a * 1000 + b * 100 + c * 10 + d;
function coded(shape: [number, number, number, number]): tf.Tensor4D {
  const [A, B, C, D] = shape;
  const v: number[] = [];
  for (let a = 0; a < A; a++)
    for (let b = 0; b < B; b++)
      for (let c = 0; c < C; c++) for (let d = 0; d < D; d++) v.push(code(a, b, c, d));
  return tf.tensor4d(v, shape);
}

const [D, C, KH, KW] = [4, 3, 2, 5];

describe("PyTorch layout converters", () => {
  it("Linear: [out, in] ↔ [in, out]", () => {
    const w = tf.tensor2d([
      [1, 2, 3],
      [4, 5, 6],
    ]); // out 2, in 3
    expect(linearWeightFromTorch(w).arraySync()).toEqual([
      [1, 4],
      [2, 5],
      [3, 6],
    ]);
  });

  it("Conv2d [D, C, kh, kw] → ours[(r·kw + c)·C + ch, d], and back", () => {
    const torch = coded([D, C, KH, KW]);
    const ours = conv2dWeightFromTorch(torch);
    expect(ours.shape).toEqual([KH * KW * C, D]);
    const o = ours.arraySync();
    for (let d = 0; d < D; d++)
      for (let ch = 0; ch < C; ch++)
        for (let r = 0; r < KH; r++)
          for (let c = 0; c < KW; c++) expect(o[(r * KW + c) * C + ch][d]).toBe(code(d, ch, r, c));
    expect(conv2dWeightToTorch(ours, [D, C, KH, KW]).arraySync()).toEqual(torch.arraySync());
    expect(() => conv2dWeightToTorch(ours, [D, C, KH, KW + 1])).toThrow(ShapeError);
  });

  it("ConvTranspose2d [D, C, kh, kw] → ours[d, (r·kw + c)·C + ch], and back", () => {
    const torch = coded([D, C, KH, KW]);
    const ours = convTranspose2dWeightFromTorch(torch);
    expect(ours.shape).toEqual([D, KH * KW * C]);
    const o = ours.arraySync();
    for (let d = 0; d < D; d++)
      for (let ch = 0; ch < C; ch++)
        for (let r = 0; r < KH; r++)
          for (let c = 0; c < KW; c++) expect(o[d][(r * KW + c) * C + ch]).toBe(code(d, ch, r, c));
    expect(convTranspose2dWeightToTorch(ours, [D, C, KH, KW]).arraySync()).toEqual(
      torch.arraySync(),
    );
  });
});

class Toy extends Module {
  readonly fc: Linear;
  constructor() {
    super();
    this.registerParameter("patch", tf.zeros([KH * KW * C, D]), {
      torchLayout: { kind: "conv2d", torchShape: [D, C, KH, KW] },
    });
    this.registerParameter("unpatch", tf.zeros([D, KH * KW * C]), {
      torchLayout: { kind: "convTranspose2d", torchShape: [D, C, KH, KW] },
    });
    this.registerBuffer("count", tf.scalar(0, "int32"));
    this.fc = this.registerModule("fc", new Linear(3, 2, { rng: Rng.seed(0) }));
  }
}

describe("state dicts in PyTorch layout", () => {
  it("loadTorchStateDict converts tagged parameters; toTorchStateDict inverts it", () => {
    const toy = new Toy();
    const dict = {
      patch: coded([D, C, KH, KW]),
      unpatch: coded([D, C, KH, KW]).add(1),
      count: tf.scalar(3, "int32"),
      "fc.weight": tf.tensor2d([
        [1, 2, 3],
        [4, 5, 6],
      ]),
      "fc.bias": tf.tensor1d([7, 8]),
    };
    loadTorchStateDict(toy, dict);
    const own = toy.stateDict();
    expect(own["fc.weight"].arraySync()).toEqual([
      [1, 4],
      [2, 5],
      [3, 6],
    ]);
    expect((own.patch.arraySync() as number[][])[(1 * KW + 2) * C + 1][3]).toBe(code(3, 1, 1, 2));
    const back = toTorchStateDict(toy);
    for (const [k, t] of Object.entries(dict))
      expect(back[k].arraySync(), k).toEqual(t.arraySync());
    tf.dispose([...Object.values(dict), ...Object.values(back)]);
    toy.dispose();
  });

  it("names every mis-shaped entry in PyTorch terms, and strict reports missing/unexpected keys", () => {
    const toy = new Toy();
    const bad = { "fc.weight": tf.zeros([3, 2]), patch: tf.zeros([D, C, KH, KH]) };
    expect(() => loadTorchStateDict(toy, bad, { strict: false })).toThrow(
      /2 mis-shaped entries: patch \(expected PyTorch shape \[4,3,2,5\], got \[4,3,2,2\]\); fc\.weight \(expected PyTorch shape \[2,3\], got \[3,2\]\)/,
    );
    const partial = { "fc.bias": tf.ones([2]), extra: tf.ones([1]) };
    expect(() => loadTorchStateDict(toy, partial)).toThrow(
      /missing keys: patch, unpatch, fc\.weight, count; unexpected keys: extra/,
    );
    const r = loadTorchStateDict(toy, partial, { strict: false });
    expect(r.unexpected).toEqual(["extra"]);
    tf.dispose([...Object.values(bad), ...Object.values(partial)]);
    toy.dispose();
  });
});
