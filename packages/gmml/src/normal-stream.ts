import type { Rng } from "@sit/core";

const TWO_POW_NEG_32 = 2.3283064365386963e-10;
const LAYERS = 128;
// Marsaglia & Tsang's ziggurat for N(0, 1) (J. Stat. Softw. 5(8), 2000) with 128 layers; the
// layer index takes the low 7 bits of a draw and the signed 25-bit value the other 25, so the two
// are independent (the original shares bits between them).
const R = 3.442619855899;
const AREA = 9.91256303526217e-3;
const SCALE = 2 ** 24;
const KN = new Float64Array(LAYERS);
const WN = new Float64Array(LAYERS);
const FN = new Float64Array(LAYERS);
{
  let dn = R;
  let tn = R;
  const q = AREA / Math.exp(-0.5 * dn * dn);
  KN[0] = (dn / q) * SCALE;
  KN[1] = 0;
  WN[0] = q / SCALE;
  WN[LAYERS - 1] = dn / SCALE;
  FN[0] = 1;
  FN[LAYERS - 1] = Math.exp(-0.5 * dn * dn);
  for (let i = LAYERS - 2; i >= 1; i--) {
    dn = Math.sqrt(-2 * Math.log(AREA / dn + Math.exp(-0.5 * dn * dn)));
    KN[i + 1] = (dn / tn) * SCALE;
    tn = dn;
    FN[i] = Math.exp(-0.5 * dn * dn);
    WN[i] = dn / SCALE;
  }
}

/**
 * A fast stream of standard normal draws for bulk noise fills, seeded from four draws of an
 * explicit {@link Rng} (so a seed still fixes every value). `Rng.normal` spends four 32-bit draws
 * and a logarithm, a square root and a cosine per value, ≈ 25 ns; a noise fill of 64 images of
 * 224×224×3 needs millions. This uses sfc32 (32-bit integer arithmetic) and a ziggurat (one draw
 * and one multiply for ~99% of values).
 */
export class NormalStream {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(rng: Rng) {
    this.a = rng.uint32() | 0;
    this.b = rng.uint32() | 0;
    this.c = rng.uint32() | 0;
    this.d = rng.uint32() | 0;
    // Warm-up so that nearby seeds decorrelate (as the sfc32 authors recommend).
    for (let i = 0; i < 12; i++) this.int32();
  }

  /** sfc32: one 32-bit draw, as a signed integer. */
  private int32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t;
  }

  /** A uniform draw in (0, 1). */
  private open01(): number {
    return ((this.int32() >>> 0) + 0.5) * TWO_POW_NEG_32;
  }

  /** One N(0, 1) value. */
  next(): number {
    const u = this.int32();
    const i = u & (LAYERS - 1);
    const hz = u >> 7;
    if (Math.abs(hz) < KN[i]) return hz * WN[i];
    return this.slow(hz, i);
  }

  /**
   * Write N(0, 1) draws into `out[from..to)`. The same values as calling {@link next} once per
   * element, but the generator state lives in locals for the fast path (≈ 2× faster).
   */
  fill(out: Float32Array, from: number, to: number): void {
    let a = this.a;
    let b = this.b;
    let c = this.c;
    let d = this.d;
    for (let k = from; k < to; k++) {
      const u = (((a + b) | 0) + d) | 0;
      d = (d + 1) | 0;
      a = b ^ (b >>> 9);
      b = (c + (c << 3)) | 0;
      c = (c << 21) | (c >>> 11);
      c = (c + u) | 0;
      const i = u & (LAYERS - 1);
      const hz = u >> 7;
      if (Math.abs(hz) < KN[i]) {
        out[k] = hz * WN[i];
        continue;
      }
      // Rare slow path (~1%): hand the state back to the object and use the general code.
      this.a = a;
      this.b = b;
      this.c = c;
      this.d = d;
      out[k] = this.slow(hz, i);
      a = this.a;
      b = this.b;
      c = this.c;
      d = this.d;
    }
    this.a = a;
    this.b = b;
    this.c = c;
    this.d = d;
  }

  private slow(hz: number, i: number): number {
    for (;;) {
      if (i === 0) {
        // The tail beyond R, by Marsaglia's exponential method.
        let x: number;
        let y: number;
        do {
          x = -Math.log(this.open01()) / R;
          y = -Math.log(this.open01());
        } while (y + y < x * x);
        return hz > 0 ? R + x : -R - x;
      }
      const x = hz * WN[i];
      if (FN[i] + this.open01() * (FN[i - 1] - FN[i]) < Math.exp(-0.5 * x * x)) return x;
      const u = this.int32();
      i = u & (LAYERS - 1);
      hz = u >> 7;
      if (Math.abs(hz) < KN[i]) return hz * WN[i];
    }
  }
}
