import * as tf from "@tensorflow/tfjs";
import { describe, expect, it } from "vitest";
import { ConfigError, ShapeError } from "../errors";
import { BatchNorm1d } from "./batch-norm";

// Float64 reference of PyTorch's BatchNorm1d train step, written out by hand.
function reference(x: number[][], gamma: number[], beta: number[], eps: number) {
  const n = x.length;
  const c = x[0].length;
  const mean = Array.from({ length: c }, (_, j) => x.reduce((s, r) => s + r[j], 0) / n);
  const biased = Array.from(
    { length: c },
    (_, j) => x.reduce((s, r) => s + (r[j] - mean[j]) ** 2, 0) / n,
  );
  const y = x.map((r) =>
    r.map((v, j) => ((v - mean[j]) / Math.sqrt(biased[j] + eps)) * gamma[j] + beta[j]),
  );
  return { mean, biased, unbiased: biased.map((v) => (v * n) / (n - 1)), y };
}

const X = [
  [0.5, -1.2, 3.0],
  [1.5, 0.4, -2.0],
  [-0.7, 2.2, 0.1],
  [2.1, -0.3, 1.4],
];

function close(a: ArrayLike<number>, b: number[], tol = 1e-5) {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < b.length; i++) expect(Math.abs(a[i] - b[i])).toBeLessThan(tol);
}

describe("BatchNorm1d", () => {
  it("train mode: biased variance to normalise, unbiased variance and momentum 0.1 for running stats", () => {
    const bn = new BatchNorm1d(3);
    const gamma = [1.5, 0.5, -1];
    const beta = [0.1, 0.2, -0.3];
    bn.weight?.assign(tf.tensor1d(gamma));
    bn.bias?.assign(tf.tensor1d(beta));
    const ref = reference(X, gamma, beta, 1e-5);
    const y = bn.apply(tf.tensor2d(X));
    close(y.dataSync(), ref.y.flat());
    close(
      bn.runningMean?.dataSync() ?? [],
      ref.mean.map((m) => 0.1 * m),
    );
    close(
      bn.runningVar?.dataSync() ?? [],
      ref.unbiased.map((v) => 0.9 + 0.1 * v),
    );
    expect(bn.numBatchesTracked?.dataSync()[0]).toBe(1);
    // Second step accumulates.
    bn.apply(tf.tensor2d(X)).dispose();
    close(
      bn.runningMean?.dataSync() ?? [],
      ref.mean.map((m) => 0.9 * 0.1 * m + 0.1 * m),
    );
    expect(bn.numBatchesTracked?.dataSync()[0]).toBe(2);
    y.dispose();
    bn.dispose();
  });

  it("eval mode normalises with the running statistics and leaves them unchanged", () => {
    const bn = new BatchNorm1d(3, { affine: false });
    bn.runningMean?.assign(tf.tensor1d([1, 2, 3]));
    bn.runningVar?.assign(tf.tensor1d([4, 0.25, 1]));
    bn.eval();
    const y = bn.apply(tf.tensor2d(X));
    close(
      y.dataSync(),
      X.flatMap((r) => r.map((v, j) => (v - [1, 2, 3][j]) / Math.sqrt([4, 0.25, 1][j] + 1e-5))),
    );
    close(bn.runningMean?.dataSync() ?? [], [1, 2, 3], 1e-12);
    expect(bn.numBatchesTracked?.dataSync()[0]).toBe(0);
    y.dispose();
    bn.dispose();
  });

  it("affine: false has no parameters but PyTorch's three buffers", () => {
    const bn = new BatchNorm1d(4, { affine: false });
    expect(bn.namedParameters()).toEqual([]);
    expect(bn.namedBuffers().map(([n]) => n)).toEqual([
      "running_mean",
      "running_var",
      "num_batches_tracked",
    ]);
    expect(bn.stateDict().num_batches_tracked.dtype).toBe("int32");
    bn.dispose();
  });

  it("momentum null gives the cumulative average; rank-3 input reduces over N and L", () => {
    const bn = new BatchNorm1d(3, { momentum: null, affine: false });
    const ref = reference(X, [1, 1, 1], [0, 0, 0], 1e-5);
    bn.apply(tf.tensor3d([X.slice(0, 2), X.slice(2)])).dispose();
    close(bn.runningMean?.dataSync() ?? [], ref.mean); // factor 1/1 after the first batch
    close(bn.runningVar?.dataSync() ?? [], ref.unbiased);
    bn.dispose();
  });

  it("gradients flow to weight, bias and input", () => {
    const bn = new BatchNorm1d(3);
    const x = tf.tensor2d(X);
    const { grads } = tf.variableGrads(() => bn.apply(x).square().sum() as tf.Scalar);
    expect(Object.keys(grads).length).toBe(2);
    for (const g of Object.values(grads)) expect(Number.isFinite(g.sum().dataSync()[0])).toBe(true);
    tf.dispose([x, ...Object.values(grads)]);
    bn.dispose();
  });

  it("rejects bad input with clear errors", () => {
    expect(() => new BatchNorm1d(0)).toThrow(ConfigError);
    expect(() => new BatchNorm1d(3, { momentum: 2 })).toThrow(/momentum/);
    const bn = new BatchNorm1d(3);
    expect(() => bn.apply(tf.ones([4, 5]))).toThrow(ShapeError);
    expect(() => bn.apply(tf.ones([1, 3]))).toThrow(/more than 1 value per feature/);
    expect(() => bn.apply(tf.ones([3]))).toThrow(/rank 2/);
    bn.dispose();
  });
});
