import type { WasmHeap } from "./heap";

// The element loops of the whole-model updates, over float32 element offsets into the wasm heap.

/** One parameter tensor's AdamW update (offsets are float32 element indices into the heap). */
export interface AdamWSlice {
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
  /** Σ x² over `size` elements from `offset`, accumulated in float64. */
  sumOfSquares(offset: number, size: number): number;
  /** `p ← p·decay − stepSize·m / (√v / bc2Sqrt + ε)` after the moment updates, in place. */
  adamw(s: AdamWSlice): void;
  /** `out ← fl(t·m) + fl(s·(1 − m))` in float32 (out may be t). */
  ema(out: number, teacher: number, student: number, size: number, momentum: number): void;
}

/** Loops in JavaScript over a float32 view of the heap. */
export function flatKernels(heap: WasmHeap): FlatKernels {
  const H = heap.f32();
  const f = Math.fround;
  return {
    sumOfSquares(offset, size) {
      let ss = 0;
      for (let j = offset; j < offset + size; j++) ss += H[j] * H[j];
      return ss;
    },
    adamw(s) {
      const { beta1: b1, beta2: b2, eps, decay, stepSize, bc2Sqrt, clip } = s;
      for (let j = 0; j < s.size; j++) {
        // Clipped gradient rounded to float32, as PyTorch scales p.grad in place.
        const g = clip === 1 ? H[s.grad + j] : f(H[s.grad + j] * clip);
        const m = f(b1 * H[s.m + j] + (1 - b1) * g);
        const v = f(b2 * H[s.v + j] + (1 - b2) * g * g);
        H[s.m + j] = m;
        H[s.v + j] = v;
        H[s.param + j] = H[s.param + j] * decay - (stepSize * m) / (Math.sqrt(v) / bc2Sqrt + eps);
      }
    },
    ema(out, teacher, student, size, momentum) {
      const a = f(momentum);
      const b = f(1 - momentum);
      for (let j = 0; j < size; j++) H[out + j] = f(H[teacher + j] * a) + f(H[student + j] * b);
    },
  };
}
