import type { WasmHeap } from "./heap";
import {
  ACTIVATION_KERNELS_SHARED,
  ACTIVATION_KERNELS_UNSHARED,
  LAYER_KERNELS_SHARED,
  LAYER_KERNELS_UNSHARED,
  MATMUL_KERNELS_SHARED,
  MATMUL_KERNELS_UNSHARED,
  PERMUTE_KERNELS_SHARED,
  PERMUTE_KERNELS_UNSHARED,
  UPDATE_KERNELS_SHARED,
  UPDATE_KERNELS_UNSHARED,
} from "./flat-kernels.wasm";
import { type SoftmaxKernels, softmaxTwin } from "./softmax-twin";

// The element loops over the wasm heap: small SIMD modules that import tfjs's own memory
// (update-kernels.wat: AdamW, EMA, sums of squares; layer-kernels.wat: column sums, LayerNorm;
// activation-kernels.wat: GELU, attention softmax; matmul-kernels.wat: products of a few rows;
// permute-kernels.wat: transposes), and the same arithmetic in JavaScript where the modules cannot
// be instantiated (GELU and transposes then stay with tfjs's kernels). Both compute in float32 operation by operation, as PyTorch's
// AdamW and EMA do, and give identical results (flat.test.ts).

/** One parameter tensor's AdamW update (offsets are float32 element indices into the heap). */
export interface AdamWSlice {
  /** Where the updated parameter goes (may equal `param`). */
  out: number;
  param: number;
  grad: number;
  m: number;
  v: number;
  size: number;
  /** Clip factor of the gradient (1: unclipped). */
  clip: number;
  /** `1 − lr·wd` (decoupled weight decay). */
  decay: number;
  /** `lr / (1 − β₁ᵗ)`. */
  stepSize: number;
  /** `√(1 − β₂ᵗ)`. */
  bc2Sqrt: number;
  beta1: number;
  beta2: number;
  eps: number;
}

export interface FlatKernels {
  /** Which implementation runs: the SIMD module or the JavaScript loops. */
  readonly kind: "simd" | "js";
  /** Σ x² over `size` elements from `offset`, in float64 (four lanes, then the tail). */
  sumOfSquares(offset: number, size: number): number;
  /**
   * `g ← g·clip; m ← m·β₁ + g·(1−β₁); v ← v·β₂ + (g·g)·(1−β₂)` (moments in place);
   * `out ← p·decay − stepSize·(m / (√v / bc2Sqrt + ε))`, each operation rounded to float32.
   */
  adamw(s: AdamWSlice): void;
  /** `out ← t·m + s·(1 − m)` in float32 (out may be t). */
  ema(out: number, teacher: number, student: number, size: number, momentum: number): void;
  /** `out[j] ← Σᵢ x[i, j]` over a row-major `[rows, cols]` matrix, adding rows in order, in float32. */
  columnSum(out: number, x: number, rows: number, cols: number): void;
  /** LayerNorm over rows: writes `y = x̂·γ + β`, `x̂` and `rstd` (one per row). */
  layerNormForward(o: LayerNormForward): void;
  /** LayerNorm gradients: `dx`, and `dγ`, `dβ` summed over rows. */
  layerNormBackward(o: LayerNormBackward): void;
  /**
   * `out[M, N] = bias + x[M, K]·w[K, N]` (row-major; N a multiple of 4), every output adding its
   * float32 products in increasing k: meant for a few rows (M ≤ 32) through a large weight.
   */
  smallMatMul(o: SmallMatMul): void;
  /** The attention softmax over rows of scaled scores, and its backward (softmax-twin.ts). */
  softmax: SoftmaxKernels;
  /**
   * Exact GELU over `size` floats, SIMD only (elsewhere tfjs's ops compute it): `forward` writes
   * `y = x·Φ(x)` and `Φ(x)`; `backward` writes `dx = dy·(Φ + x·φ(x))`.
   */
  gelu?: {
    forward(y: number, cdf: number, x: number, size: number): void;
    backward(dx: number, dy: number, x: number, cdf: number, size: number): void;
  };
  /** Transposes, SIMD only (elsewhere tfjs's `Transpose` runs); see permute-kernels.wat. */
  permute?: {
    /** `out[b·ob + c·oc + r] = x[b·sb + r·sr + c]` for b < nb, r < nr, c < nc. */
    tiles(o: TransposeTiles): void;
    /** Rows of `len` floats from `x[i0·s0 + i1·s1 + i2·s2]`, in (i0, i1, i2) order, to `out`. */
    rows(o: PermuteRows): void;
  };
}

/** Heap offsets (float32 elements), extents and strides of one tiled transpose. */
export interface TransposeTiles {
  out: number;
  x: number;
  nb: number;
  nr: number;
  nc: number;
  ob: number;
  oc: number;
  sb: number;
  sr: number;
}

/** Heap offsets (float32 elements), extents and strides of one row-copying permutation. */
export interface PermuteRows {
  out: number;
  x: number;
  n: [number, number, number];
  strides: [number, number, number];
  len: number;
}

/** Heap offsets (float32 elements) and sizes of one LayerNorm forward. */
export interface LayerNormForward {
  y: number;
  xhat: number;
  rstd: number;
  x: number;
  gamma: number;
  beta: number;
  rows: number;
  cols: number;
  eps: number;
}

/** Heap offsets (float32 elements) and sizes of one LayerNorm backward. */
export interface LayerNormBackward {
  dx: number;
  dgamma: number;
  dbeta: number;
  dy: number;
  xhat: number;
  rstd: number;
  gamma: number;
  rows: number;
  cols: number;
}

/** Heap offsets (float32 elements) and sizes of one few-rows product; `bias` null for none. */
export interface SmallMatMul {
  out: number;
  x: number;
  w: number;
  bias: number | null;
  m: number;
  k: number;
  n: number;
}

interface SimdExports {
  sumsq(p: number, n: number): number;
  adamw(...a: number[]): void;
  ema(out: number, t: number, s: number, n: number, a: number, b: number): void;
  colsum(out: number, x: number, rows: number, cols: number): void;
  ln_fwd(...a: number[]): void;
  ln_bwd(...a: number[]): void;
  gelu_fwd(y: number, cdf: number, x: number, n: number): void;
  gelu_bwd(dx: number, dy: number, x: number, cdf: number, n: number): void;
  gemm_small(...a: number[]): void;
  softmax_fwd(p: number, x: number, rows: number, n: number, scale: number): void;
  softmax_bwd(dx: number, dp: number, p: number, rows: number, n: number, scale: number): void;
  transpose_tiles(...a: number[]): void;
  permute_rows(...a: number[]): void;
}

const instances = new WeakMap<WebAssembly.Memory, SimdExports | null>();

function decode(base64: string): Uint8Array<ArrayBuffer> {
  const bin = atob(base64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** The SIMD module bound to `memory`, or null where this engine cannot run it. */
function simdFor(memory: WebAssembly.Memory): SimdExports | null {
  if (instances.has(memory)) return instances.get(memory) ?? null;
  let exports: SimdExports | null = null;
  try {
    const shared =
      typeof SharedArrayBuffer !== "undefined" && memory.buffer instanceof SharedArrayBuffer;
    const instantiate = (base64: string) =>
      new WebAssembly.Instance(new WebAssembly.Module(decode(base64)), { env: { memory } }).exports;
    exports = {
      ...instantiate(shared ? UPDATE_KERNELS_SHARED : UPDATE_KERNELS_UNSHARED),
      ...instantiate(shared ? LAYER_KERNELS_SHARED : LAYER_KERNELS_UNSHARED),
      ...instantiate(shared ? ACTIVATION_KERNELS_SHARED : ACTIVATION_KERNELS_UNSHARED),
      ...instantiate(shared ? MATMUL_KERNELS_SHARED : MATMUL_KERNELS_UNSHARED),
      ...instantiate(shared ? PERMUTE_KERNELS_SHARED : PERMUTE_KERNELS_UNSHARED),
    } as unknown as SimdExports;
  } catch {
    exports = null; // no SIMD in this engine: the JavaScript loops run instead
  }
  instances.set(memory, exports);
  return exports;
}

/** The SIMD module over `heap` where it can run (`prefer: "js"` forces the loops), else the loops. */
export function flatKernels(heap: WasmHeap, prefer: "simd" | "js" = "simd"): FlatKernels {
  const memory = prefer === "simd" ? heap.memory() : undefined;
  const simd = memory ? simdFor(memory) : null;
  if (!simd) return jsKernels(heap.f32());
  const f = Math.fround;
  return {
    kind: "simd",
    sumOfSquares: (offset, size) => simd.sumsq(offset * 4, size),
    adamw: (s) =>
      simd.adamw(
        ...[s.out * 4, s.param * 4, s.grad * 4, s.m * 4, s.v * 4, s.size],
        ...[s.clip, s.decay, s.stepSize, s.bc2Sqrt],
        ...[s.beta1, f(1 - s.beta1), s.beta2, f(1 - s.beta2), s.eps],
      ),
    ema: (out, t, st, size, m) => simd.ema(out * 4, t * 4, st * 4, size, m, 1 - m),
    columnSum: (out, x, rows, cols) => simd.colsum(out * 4, x * 4, rows, cols),
    layerNormForward: (o) =>
      simd.ln_fwd(
        ...[o.y, o.xhat, o.rstd, o.x, o.gamma, o.beta].map((p) => p * 4),
        ...[o.rows, o.cols, o.eps],
      ),
    layerNormBackward: (o) =>
      simd.ln_bwd(
        ...[o.dx, o.dgamma, o.dbeta, o.dy, o.xhat, o.rstd, o.gamma].map((p) => p * 4),
        ...[o.rows, o.cols],
      ),
    smallMatMul: (o) =>
      simd.gemm_small(
        ...[o.out * 4, o.x * 4, o.w * 4, (o.bias ?? 0) * 4, o.bias === null ? 0 : 1],
        ...[o.m, o.k, o.n],
      ),
    softmax: {
      forward: (p, x, rows, n, scale) => simd.softmax_fwd(p * 4, x * 4, rows, n, scale),
      backward: (dx, dp, p, rows, n, scale) =>
        simd.softmax_bwd(dx * 4, dp * 4, p * 4, rows, n, scale),
    },
    gelu: {
      forward: (y, cdf, x, n) => simd.gelu_fwd(y * 4, cdf * 4, x * 4, n),
      backward: (dx, dy, x, cdf, n) => simd.gelu_bwd(dx * 4, dy * 4, x * 4, cdf * 4, n),
    },
    permute: {
      tiles: (o) =>
        simd.transpose_tiles(o.out * 4, o.x * 4, o.nb, o.nr, o.nc, o.ob, o.oc, o.sb, o.sr),
      rows: (o) => simd.permute_rows(o.out * 4, o.x * 4, ...o.n, ...o.strides, o.len),
    },
  };
}

/** The same arithmetic in JavaScript: every operation rounded to float32 with Math.fround. */
function jsKernels(H: Float32Array): FlatKernels {
  const f = Math.fround;
  return {
    kind: "js",
    sumOfSquares(offset, size) {
      // Four lane sums as the SIMD loop keeps them, combined as it does, then the tail.
      const lanes = [0, 0, 0, 0];
      const end4 = offset + (size & ~3);
      for (let j = offset; j < end4; j += 4)
        for (let k = 0; k < 4; k++) lanes[k] += H[j + k] * H[j + k];
      let ss = lanes[0] + lanes[2] + (lanes[1] + lanes[3]);
      for (let j = end4; j < offset + size; j++) ss += H[j] * H[j];
      return ss;
    },
    adamw(s) {
      const [clip, decay, step, bc2] = [f(s.clip), f(s.decay), f(s.stepSize), f(s.bc2Sqrt)];
      const [b1, c1, b2, c2, eps] = [
        f(s.beta1),
        f(1 - s.beta1),
        f(s.beta2),
        f(1 - s.beta2),
        f(s.eps),
      ];
      for (let j = 0; j < s.size; j++) {
        const g = f(H[s.grad + j] * clip);
        const m = f(f(H[s.m + j] * b1) + f(g * c1));
        const v = f(f(H[s.v + j] * b2) + f(f(g * g) * c2));
        H[s.m + j] = m;
        H[s.v + j] = v;
        const denom = f(f(f(Math.sqrt(v)) / bc2) + eps);
        H[s.out + j] = f(H[s.param + j] * decay) - f(step * f(m / denom));
      }
    },
    ema(out, teacher, student, size, momentum) {
      const a = f(momentum);
      const b = f(1 - momentum);
      for (let j = 0; j < size; j++) H[out + j] = f(H[teacher + j] * a) + f(H[student + j] * b);
    },
    columnSum(out, x, rows, cols) {
      H.fill(0, out, out + cols);
      for (let i = 0; i < rows; i++)
        for (let j = 0; j < cols; j++) H[out + j] = f(H[out + j] + H[x + i * cols + j]);
    },
    layerNormForward(o) {
      const { rows, cols } = o;
      const eps = f(o.eps);
      for (let i = 0; i < rows; i++) {
        const x = o.x + i * cols;
        const mean = f(rowSum(cols, (j) => H[x + j]) / cols);
        const r = f(
          1 / f(Math.sqrt(f(f(rowSum(cols, (j) => f(f(H[x + j] - mean) ** 2)) / cols) + eps))),
        );
        H[o.rstd + i] = r;
        for (let j = 0; j < cols; j++) {
          const xh = f(f(H[x + j] - mean) * r);
          H[o.xhat + i * cols + j] = xh;
          H[o.y + i * cols + j] = f(xh * H[o.gamma + j]) + H[o.beta + j];
        }
      }
    },
    smallMatMul,
    softmax: softmaxTwin(H),
    layerNormBackward(o) {
      const { rows, cols } = o;
      H.fill(0, o.dgamma, o.dgamma + cols);
      H.fill(0, o.dbeta, o.dbeta + cols);
      for (let i = 0; i < rows; i++) {
        const [dy, xh] = [o.dy + i * cols, o.xhat + i * cols];
        const d = (j: number) => f(H[dy + j] * H[o.gamma + j]);
        const m1 = f(rowSum(cols, d) / cols);
        const m2 = f(rowSum(cols, (j) => f(d(j) * H[xh + j])) / cols);
        const r = H[o.rstd + i];
        for (let j = 0; j < cols; j++) {
          H[o.dx + i * cols + j] = f(f(f(d(j) - m1) - f(H[xh + j] * m2)) * r);
          H[o.dgamma + j] = f(H[o.dgamma + j] + f(H[dy + j] * H[xh + j]));
          H[o.dbeta + j] = f(H[o.dbeta + j] + H[dy + j]);
        }
      }
    },
  };

  function smallMatMul(o: SmallMatMul): void {
    const { m, k, n } = o;
    for (let i = 0; i < m; i++) {
      const out = o.out + i * n;
      if (o.bias === null) H.fill(0, out, out + n);
      else H.copyWithin(out, o.bias, o.bias + n);
      for (let kk = 0; kk < k; kk++) {
        const xv = H[o.x + i * k + kk];
        const w = o.w + kk * n;
        for (let j = 0; j < n; j++) H[out + j] = f(H[out + j] + f(xv * H[w + j]));
      }
    }
  }

  /** Σⱼ term(j) in float32 as the SIMD loop adds it: four lane sums, (l0 + l1) + (l2 + l3), then the tail. */
  function rowSum(cols: number, term: (j: number) => number): number {
    const lanes = [0, 0, 0, 0];
    const cols4 = cols & ~3;
    for (let j = 0; j < cols4; j += 4)
      for (let k = 0; k < 4; k++) lanes[k] = f(lanes[k] + term(j + k));
    let tail = 0;
    for (let j = cols4; j < cols; j++) tail = f(tail + term(j));
    return f(f(f(lanes[0] + lanes[1]) + f(lanes[2] + lanes[3])) + tail);
  }
}
