// The JavaScript twin of activation-kernels.wat's softmax: the same float32 operations in the same
// order (every one rounded with Math.fround), so that both give identical bits (heap-softmax.test.ts)
// and an engine without SIMD computes what the module would.

const f = Math.fround;
const EXP_MIN = f(-87.3);
// biome-ignore lint/suspicious/noApproximativeNumericConstant: the module's literal, digit for digit
const LOG2E = f(1.44269504);
const LN2_HI = f(0.693359375);
const LN2_LO = f(-2.1219444e-4);
/** e^r's Taylor coefficients from r⁰ up to r⁶, as the module's literals give them. */
const TAYLOR = [1, 1, 0.5, 0.166666667, 4.16666667e-2, 8.33333333e-3, 1.38888889e-3].map(f);

/** Round half to even (`f32x4.nearest`); Math.round rounds halves up. */
function nearest(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** `$exp4` for one lane: 2ⁿ·e^r with x = n·ln 2 + r, 0 at or below −87.3. */
export function expTwin(x: number): number {
  const xc = Math.max(x, EXP_MIN);
  const n = nearest(f(xc * LOG2E));
  const r = f(f(xc - f(n * LN2_HI)) - f(n * LN2_LO));
  // Estrin's scheme, operation by operation as the module groups it.
  const [c0, , c2, c3, c4, c5, c6] = TAYLOR; // r¹ has coefficient 1: the module adds r itself
  const r2 = f(r * r);
  const low = f(f(c0 + r) + f(f(c2 + f(c3 * r)) * r2));
  const high = f(f(f(c4 + f(c5 * r)) + f(c6 * r2)) * f(r2 * r2));
  const p = f(low + high);
  return x > EXP_MIN ? f(p * 2 ** n) : 0;
}

/** `(l0 + l1) + (l2 + l3)` of four float32 lane sums. */
const hsum = (l: number[]) => f(f(l[0] + l[1]) + f(l[2] + l[3]));

export interface SoftmaxKernels {
  /** `p = softmax(scale·x)` over the rows of `x [rows, n]` (offsets in float32 elements). */
  forward(p: number, x: number, rows: number, n: number, scale: number): void;
  /** `dx = scale·p ⊙ (dp − Σ dp·p)` per row: the gradient with respect to the unscaled scores. */
  backward(dx: number, dp: number, p: number, rows: number, n: number, scale: number): void;
}

export function softmaxTwin(H: Float32Array): SoftmaxKernels {
  return {
    forward(p0, x0, rows, n, scaleIn) {
      const s = f(scaleIn);
      const n4 = n & ~3;
      for (let i = 0; i < rows; i++) {
        const [x, p] = [x0 + i * n, p0 + i * n];
        const lanes = [-Infinity, -Infinity, -Infinity, -Infinity];
        for (let j = 0; j < n4; j++) lanes[j & 3] = Math.max(lanes[j & 3], f(s * H[x + j]));
        let m = Math.max(Math.max(lanes[0], lanes[1]), Math.max(lanes[2], lanes[3]));
        for (let j = n4; j < n; j++) m = Math.max(m, f(s * H[x + j]));
        const sums = [0, 0, 0, 0];
        for (let j = 0; j < n4; j++) {
          H[p + j] = expTwin(f(f(s * H[x + j]) - m));
          sums[j & 3] = f(sums[j & 3] + H[p + j]);
        }
        let sum = hsum(sums);
        let tail = 0;
        for (let j = n4; j < n; j++) {
          H[p + j] = expTwin(f(f(s * H[x + j]) - m));
          tail = j === n4 ? H[p + j] : f(tail + H[p + j]);
        }
        if (n > n4) sum = f(sum + tail);
        const r = f(1 / sum);
        for (let j = 0; j < n; j++) H[p + j] = f(H[p + j] * r);
      }
    },
    backward(dx0, dp0, p0, rows, n, scaleIn) {
      const s = f(scaleIn);
      const n4 = n & ~3;
      for (let i = 0; i < rows; i++) {
        const [dx, dp, p] = [dx0 + i * n, dp0 + i * n, p0 + i * n];
        const lanes = [0, 0, 0, 0];
        for (let j = 0; j < n4; j++) lanes[j & 3] = f(lanes[j & 3] + f(H[dp + j] * H[p + j]));
        let tail = 0;
        for (let j = n4; j < n; j++) tail = f(tail + f(H[dp + j] * H[p + j]));
        const dot = f(hsum(lanes) + tail);
        for (let j = 0; j < n; j++) H[dx + j] = f(f(H[p + j] * f(H[dp + j] - dot)) * s);
      }
    },
  };
}
