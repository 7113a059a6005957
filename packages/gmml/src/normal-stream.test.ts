import { Rng } from "@sit/core";
import { describe, expect, it } from "vitest";
import { NormalStream } from "./normal-stream";

// Φ via the complementary error function (Numerical Recipes' erfc, |error| < 1.2e-7).
function normalCdf(x: number): number {
  const z = Math.abs(x) / Math.SQRT2;
  const t = 1 / (1 + 0.5 * z);
  const erfc =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t *
          (1.00002368 +
            t *
              (0.37409196 +
                t *
                  (0.09678418 +
                    t *
                      (-0.18628806 +
                        t *
                          (0.27886807 +
                            t *
                              (-1.13520398 +
                                t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? 1 - erfc / 2 : erfc / 2;
}

describe("NormalStream (bulk N(0, 1) for noise fills)", () => {
  it("passes a Kolmogorov–Smirnov test against N(0, 1), tails included", () => {
    const stream = new NormalStream(Rng.seed(1));
    const n = 200_000;
    const xs = new Float64Array(n);
    for (let i = 0; i < n; i++) xs[i] = stream.next();
    xs.sort();
    let d = 0;
    for (let i = 0; i < n; i++) {
      const c = normalCdf(xs[i]);
      d = Math.max(d, Math.abs(c - i / n), Math.abs(c - (i + 1) / n));
    }
    expect(d).toBeLessThan(1.63 / Math.sqrt(n)); // 1% critical value
    // The tail beyond the ziggurat's base (r ≈ 3.44): P = 5.76e-4.
    const tail = xs.filter((x) => Math.abs(x) > 3.442619855899).length / n;
    expect(Math.abs(tail - 5.76e-4)).toBeLessThan(5 * Math.sqrt(5.76e-4 / n));
  });

  it("fill writes the same values as next", () => {
    const a = new NormalStream(Rng.seed(11));
    const b = new NormalStream(Rng.seed(11));
    const out = new Float32Array(50_000);
    b.fill(out, 10, 40_000);
    b.fill(out, 40_000, 50_000);
    const expected = new Float32Array(50_000);
    for (let i = 10; i < 50_000; i++) expected[i] = a.next();
    expect(out).toEqual(expected);
    expect(a.next()).toBe(b.next());
  });

  it("is fixed by the Rng's state", () => {
    const a = new NormalStream(Rng.seed(7));
    const b = new NormalStream(Rng.seed(7));
    const c = new NormalStream(Rng.seed(8));
    const va = Array.from({ length: 100 }, () => a.next());
    expect(Array.from({ length: 100 }, () => b.next())).toEqual(va);
    expect(Array.from({ length: 100 }, () => c.next())).not.toEqual(va);
  });
});
