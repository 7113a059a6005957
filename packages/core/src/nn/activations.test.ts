import * as tf from "@tensorflow/tfjs";
import { TEST_BACKENDS, withBackend } from "@sit/testing";
import { describe, expect, it } from "vitest";
import { gelu } from "./activations";

// Independent float64 reference: erf from its Maclaurin series (accurate to ~1e-12 on [-4, 4]).
function erf64(x: number): number {
  let term = x;
  let sum = x;
  for (let n = 1; n < 200; n++) {
    term *= (-x * x) / n;
    const add = term / (2 * n + 1);
    sum += add;
    if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}
const gelu64 = (x: number) => 0.5 * x * (1 + erf64(x / Math.SQRT2));
const geluGrad64 = (x: number) =>
  0.5 * (1 + erf64(x / Math.SQRT2)) + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI);

const xs = Array.from({ length: 81 }, (_, i) => -4 + i * 0.1);

describe("gelu (exact erf)", () => {
  it("the series reference reproduces known erf values", () => {
    // Abramowitz & Stegun, table 7.1.
    expect(erf64(0.5)).toBeCloseTo(0.5204998778, 9);
    expect(erf64(1)).toBeCloseTo(0.8427007929, 9);
    expect(erf64(2)).toBeCloseTo(0.995322265, 9);
  });

  for (const backend of TEST_BACKENDS) {
    it(`matches 0.5·x·(1+erf(x/√2)) and its derivative (${backend})`, async () => {
      await withBackend(backend, async () => {
        const x = tf.tensor1d(xs);
        const y = await gelu(x).data();
        const g = await tf
          .grad((t: tf.Tensor) => gelu(t).sum())(x)
          .data();
        for (let i = 0; i < xs.length; i++) {
          // erf in float32 kernels (cpu uses a 1.5e-7-accurate approximation): absolute bounds.
          expect(Math.abs(y[i] - gelu64(xs[i])), `gelu(${xs[i]})`).toBeLessThan(2e-6);
          expect(Math.abs(g[i] - geluGrad64(xs[i])), `gelu'(${xs[i]})`).toBeLessThan(2e-6);
        }
        // Not the tanh approximation: at x = -3 they differ by ~3e-4.
        const tanhApprox =
          0.5 * -3 * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (-3 + 0.044715 * -27)));
        expect(Math.abs(y[10] - tanhApprox)).toBeGreaterThan(1e-4);
        x.dispose();
      });
    });
  }

  it("second-order use: gradient through a composed graph agrees with finite differences", () => {
    const f = (t: tf.Tensor) => gelu(t.mul(t)).sum();
    const x0 = [0.3, -1.1, 1.7];
    const g = tf.grad(f)(tf.tensor1d(x0)).dataSync();
    const f64 = (v: number[]) => v.reduce((s, a) => s + gelu64(a * a), 0);
    for (let i = 0; i < 3; i++) {
      const h = 1e-5;
      const p = [...x0];
      const m = [...x0];
      p[i] += h;
      m[i] -= h;
      expect(g[i]).toBeCloseTo((f64(p) - f64(m)) / (2 * h), 5);
    }
  });
});
