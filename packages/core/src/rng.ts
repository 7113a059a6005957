import { xoroshiro128plus } from "pure-rand";
import { ConfigError, checkNumber } from "./errors";

type Generator = ReturnType<typeof xoroshiro128plus>;

/** Serialisable state of an {@link Rng}; `Rng.fromState(rng.state())` continues the same stream. */
export interface RngState {
  algorithm: "xoroshiro128plus";
  state: number[];
}

const TWO_POW_32 = 4294967296;
const TWO_POW_53 = 9007199254740992;

/**
 * The seeded, splittable random number generator used for every random draw in SiT.js
 * (masks, augmentations, shuffling, initialisation). Backed by pure-rand's xoroshiro128+.
 * Never use `Math.random` in the project: a seed must fix a whole run on every backend.
 */
export class Rng {
  private constructor(private gen: Generator) {}

  /** A generator seeded with an integer (any 32-bit integer; larger values are folded). */
  static seed(seed: number): Rng {
    checkNumber("seed", seed, { integer: true });
    // Fold seeds beyond 32 bits so that e.g. Date.now() values still differ.
    const folded = (seed | 0) ^ Math.floor(seed / TWO_POW_32);
    return new Rng(xoroshiro128plus(folded));
  }

  /** Restore a generator from {@link Rng.state}. */
  static fromState(state: RngState): Rng {
    if (
      !state ||
      state.algorithm !== "xoroshiro128plus" ||
      !Array.isArray(state.state) ||
      state.state.length !== 4
    ) {
      throw new ConfigError(
        `state: expected { algorithm: "xoroshiro128plus", state: [4 integers] }, got ${JSON.stringify(state)}`,
      );
    }
    return new Rng(xoroshiro128plus.fromState(state.state));
  }

  /** The current state (a copy); JSON-serialisable. */
  state(): RngState {
    return { algorithm: "xoroshiro128plus", state: [...this.gen.getState()] };
  }

  /** An independent copy that will produce the same stream as this one. */
  clone(): Rng {
    return new Rng(this.gen.clone());
  }

  /**
   * A new generator whose stream is independent of this one's (seeded from four fresh draws
   * of this generator, which advances it). Use one child per consumer (masking, augmentation…).
   */
  split(): Rng {
    const s: number[] = [
      this.uint32() | 0,
      this.uint32() | 0,
      this.uint32() | 0,
      this.uint32() | 0,
    ];
    if (s.every((v): boolean => v === 0)) s[0] = 1; // xoroshiro's all-zero state is absorbing
    return new Rng(xoroshiro128plus.fromState(s));
  }

  /** A uniform unsigned 32-bit integer. */
  uint32(): number {
    return this.gen.unsafeNext() >>> 0;
  }

  /** A uniform float in [0, 1) with 53 random bits. */
  float(): number {
    const a = this.uint32() >>> 5;
    const b = this.uint32() >>> 6;
    return (a * 67108864 + b) / TWO_POW_53;
  }

  /** A uniform float in [low, high). */
  uniform(low = 0, high = 1): number {
    return low + (high - low) * this.float();
  }

  /** A uniform integer in [low, high) (numpy's `randint` convention). */
  int(low: number, high: number): number {
    if (!(high > low))
      throw new ConfigError(`int: expected high > low, got low=${low}, high=${high}`);
    const span = high - low;
    if (span <= TWO_POW_32) {
      // Rejection sampling removes the modulo bias.
      const limit = TWO_POW_32 - (TWO_POW_32 % span);
      let v = this.uint32();
      while (v >= limit) v = this.uint32();
      return low + (v % span);
    }
    return low + Math.floor(this.float() * span);
  }

  /** A standard normal draw (Box–Muller; two uniforms per draw, no cached spare so state stays simple). */
  normal(mean = 0, std = 1): number {
    let u = this.float();
    while (u <= 0) u = this.float();
    const v = this.float();
    return mean + std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** True with probability p. */
  bernoulli(p: number): boolean {
    return this.float() < p;
  }

  /** A uniformly chosen element. */
  choice<T>(items: readonly T[]): T {
    if (items.length === 0) throw new ConfigError("choice: expected a non-empty array, got []");
    return items[this.int(0, items.length)];
  }

  /** Shuffle in place (Fisher–Yates) and return the array. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(0, i + 1);
      const t = items[i];
      items[i] = items[j];
      items[j] = t;
    }
    return items;
  }

  /** A random permutation of 0..n-1. */
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(0, i + 1);
      const t = p[i];
      p[i] = p[j];
      p[j] = t;
    }
    return p;
  }

  /** Fill a Float32Array with standard normal draws. */
  fillNormal(out: Float32Array, mean = 0, std = 1): Float32Array {
    for (let i = 0; i < out.length; i++) out[i] = this.normal(mean, std);
    return out;
  }

  /** A seed for tfjs's own random ops (`tf.randomNormal(shape, 0, 1, 'float32', seed)`). */
  tfSeed(): number {
    return this.int(0, 2147483647);
  }
}
