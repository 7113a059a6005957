import * as tf from "@tensorflow/tfjs";
import { type FlatGroup, type StepHyper, flatCopyIsCurrent, recordAssigned } from "./flat-group";

// The AdamW step for backends whose tensors live in host memory (cpu, wasm). There, one fused
// loop over typed arrays beats a chain of tfjs kernels by a wide margin: each tfjs kernel streams
// the whole flat buffer through memory, and on wasm Slice/SplitV/Gather copy the entire input
// per call. No tfjs kernel runs; tensors are only read (gradients) and created (new parameters).

function currentParams(g: FlatGroup): Float32Array {
  const host = g.host as NonNullable<FlatGroup["host"]>;
  if (host.params && flatCopyIsCurrent(g)) return host.params;
  const flat = new Float32Array(g.layout.total);
  g.vars.forEach((v, i) => {
    flat.set(v.dataSync() as Float32Array, g.layout.offsets[i]);
  });
  return flat;
}

const FLOAT32_MAX = 3.4028234663852886e38;

/**
 * Sum of squares as PyTorch's float32 norm sees it: accumulated here in float64, but a total
 * beyond float32's range is infinite there, and then the clip factor is 0 (the gradient is
 * zeroed).
 */
function sumOfSquares(g: Float32Array): number {
  let ss = 0;
  for (let j = 0; j < g.length; j++) ss += g[j] * g[j];
  return ss > FLOAT32_MAX ? Number.POSITIVE_INFINITY : ss;
}

/** Per-tensor clipping factors (SiT: c/(‖g‖+1e-6) when below 1) times the global-norm factor. */
function clipFactors(grads: Float32Array[][], h: StepHyper): Float64Array[] {
  const factors = grads.map((gs) => new Float64Array(gs.length).fill(1));
  if (h.clipPerTensor === null && h.clipGlobalNorm === null) return factors;
  let totalSq = 0;
  grads.forEach((gs, gi) => {
    gs.forEach((g, i) => {
      const ss = sumOfSquares(g);
      let f = 1;
      if (h.clipPerTensor !== null) f = Math.min(1, h.clipPerTensor / (Math.sqrt(ss) + 1e-6));
      factors[gi][i] = f;
      // A zeroed tensor contributes nothing (and ∞·0 must not turn the total into NaN).
      if (f !== 0) totalSq += ss * f * f;
    });
  });
  if (h.clipGlobalNorm !== null) {
    const coef = Math.min(1, h.clipGlobalNorm / (Math.sqrt(totalSq) + 1e-6));
    for (const f of factors) for (let i = 0; i < f.length; i++) f[i] *= coef;
  }
  return factors;
}

/** One AdamW step of every group on host memory. `grads[g][i]` belongs to `groups[g].vars[i]`. */
export function hostStep(groups: FlatGroup[], grads: tf.Tensor[][], h: StepHyper): void {
  const arrays = grads.map((gs) => gs.map((t) => t.dataSync() as Float32Array));
  const factors = clipFactors(arrays, h);
  const { beta1: b1, beta2: b2, eps } = h;
  const bc2Sqrt = Math.sqrt(1 - b2 ** h.step);
  groups.forEach((g, gi) => {
    if (g.layout.total === 0) return;
    const host = g.host as NonNullable<FlatGroup["host"]>;
    const { m, v } = host;
    const params = currentParams(g);
    const out = new Float32Array(g.layout.total);
    const decay = 1 - g.lr * g.weightDecay;
    const stepSize = g.lr / (1 - b1 ** h.step);
    g.vars.forEach((_, i) => {
      const grad = arrays[gi][i];
      const f = factors[gi][i];
      const off = g.layout.offsets[i];
      for (let j = 0; j < grad.length; j++) {
        const k = off + j;
        // Clipped gradient rounded to float32, as PyTorch scales p.grad in place.
        const gj = f === 1 ? grad[j] : Math.fround(grad[j] * f);
        const mj = Math.fround(b1 * m[k] + (1 - b1) * gj);
        const vj = Math.fround(b2 * v[k] + (1 - b2) * gj * gj);
        m[k] = mj;
        v[k] = vj;
        out[k] = params[k] * decay - (stepSize * mj) / (Math.sqrt(vj) / bc2Sqrt + eps);
      }
    });
    host.params = out;
    // `out` is never written again, so the cpu backend may keep views of it without copying.
    g.vars.forEach((variable, i) => {
      const off = g.layout.offsets[i];
      const t = tf.tensor(
        out.subarray(off, off + g.layout.sizes[i]),
        g.layout.shapes[i],
        "float32",
      );
      variable.assign(t);
      t.dispose();
    });
    recordAssigned(g);
  });
}
