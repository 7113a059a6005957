import * as tf from "@tensorflow/tfjs";
import { kernelArgs, makeProgram, registerWebgpuKernels } from "./program";
import { columnSum } from "./reductions";

/** tfjs kernel names of the fused (bias +) GELU (registered for the `webgpu` backend). */
export const GELU_KERNEL = "SitGelu";
export const BIAS_GELU_KERNEL = "SitBiasGelu";
export const BIAS_GELU_GRAD_KERNEL = "SitBiasGeluGrad";
/**
 * Column sums `[M, D]` → `[D]` (a bias gradient) in one tfjs kernel: two dispatches up to 32k rows,
 * one more per factor of 32 beyond (reductions.ts' `columnSum`).
 */
export const COLUMN_SUM_KERNEL = "SitColumnSum";

/**
 * Φ(x), the standard normal CDF, in WGSL (which has no erf). Φ(x) = erfc(−x/√2)/2 with erfc from
 * the Chebyshev fit of Numerical Recipes (`erfcc`, fractional error < 1.2e-7 over the whole real
 * line): unlike 1 + erf(x), the tail x ≪ 0 keeps its relative accuracy, so GELU's small negative
 * values come out right, not as a difference of nearly equal numbers.
 */
export const PHI_WGSL = `
  fn sitErfcNonNeg(z : f32) -> f32 {
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
      t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
      t * (-0.82215223 + t * 0.17087277))))))));
    return t * exp(-z * z + poly);
  }
  fn sitPhi(x : f32) -> f32 {
    let r = 0.5 * sitErfcNonNeg(abs(x) * 0.70710678118654752);
    return select(r, 1.0 - r, x >= 0.0);
  }
  fn sitGelu(x : f32) -> f32 { return x * sitPhi(x); }
  fn sitGeluGrad(x : f32) -> f32 {
    return sitPhi(x) + x * 0.3989422804014327 * exp(-0.5 * x * x);
  }
`;

const THREADS = 256;

function elementwise(
  backend: ReturnType<typeof kernelArgs>["backend"],
  key: string,
  inputs: tf.TensorInfo[],
  names: string[],
  expr: string,
): tf.TensorInfo {
  const shape = inputs[names.indexOf("X")].shape;
  const size = tf.util.sizeFromShape(shape);
  const hasBias = names.includes("Bias");
  const program = makeProgram({
    key: `${key}_${hasBias}`,
    outputShape: shape,
    groups: Math.ceil(size / THREADS),
    threads: THREADS,
    variableNames: names,
    uniforms: "total : i32, cols : i32,",
    code: `
  ${PHI_WGSL}
  fn main(index : i32) {
    let i = sitGroup() * ${THREADS} + i32(localId.x);
    if (i < uniforms.total) {
      let h = X[i] ${hasBias ? "+ Bias[i % uniforms.cols]" : ""};
      result[i] = ${expr};
    }
  }`,
  });
  return backend.runWebGPUProgram(program, inputs, "float32", [
    { type: "int32", data: [size] },
    { type: "int32", data: [shape[shape.length - 1] ?? 1] },
  ]);
}

/** `gelu(x + bias)` elementwise (bias broadcast over the last axis, optional): one dispatch. */
function biasGeluForward(args: unknown): tf.TensorInfo {
  const { inputs, backend } = kernelArgs(args);
  const { x, bias } = inputs;
  return bias
    ? elementwise(backend, "sitBiasGelu", [x, bias], ["X", "Bias"], "sitGelu(h)")
    : elementwise(backend, "sitBiasGelu", [x], ["X"], "sitGelu(h)");
}

/**
 * `dh = dy·gelu′(x + bias)` (one dispatch) and, with a bias, its gradient Σ_rows dh (two more up
 * to 32k rows, see `columnSum`).
 */
function biasGeluBackward(args: unknown): tf.TensorInfo[] {
  const { inputs, backend } = kernelArgs(args);
  const { dy, x, bias } = inputs;
  const expr = "DY[i] * sitGeluGrad(h)";
  if (!bias) return [elementwise(backend, "sitBiasGeluGrad", [dy, x], ["DY", "X"], expr)];
  const dh = elementwise(backend, "sitBiasGeluGrad", [dy, x, bias], ["DY", "X", "Bias"], expr);
  const cols = bias.shape[0];
  const rows2d = {
    ...dh,
    shape: [dh.shape.length ? tf.util.sizeFromShape(dh.shape) / cols : 1, cols],
  };
  return [dh, columnSum(backend, rows2d)];
}

function columnSumKernel(args: unknown): tf.TensorInfo {
  const { inputs, backend } = kernelArgs(args);
  return columnSum(backend, inputs.x);
}

let registered = false;

/** Register the fused GELU kernels and the forward's gradient with tfjs (once). */
export function registerGeluKernels(): void {
  if (registered) return;
  registered = true;
  registerWebgpuKernels([
    [GELU_KERNEL, biasGeluForward],
    [BIAS_GELU_KERNEL, biasGeluForward],
    [BIAS_GELU_GRAD_KERNEL, biasGeluBackward],
    [COLUMN_SUM_KERNEL, columnSumKernel],
  ]);
  tf.registerGradient({
    kernelName: GELU_KERNEL,
    inputsToSave: ["x"],
    gradFunc: (dy, [x]) => {
      const [dx] = tf
        .engine()
        .runKernel(BIAS_GELU_GRAD_KERNEL, { dy: dy as tf.Tensor, x }, {}) as tf.Tensor[];
      return { x: () => dx };
    },
  });
  tf.registerGradient({
    kernelName: BIAS_GELU_KERNEL,
    inputsToSave: ["x", "bias"],
    gradFunc: (dy, [x, bias]) => {
      const [dx, db] = tf
        .engine()
        .runKernel(BIAS_GELU_GRAD_KERNEL, { dy: dy as tf.Tensor, x, bias }, {}) as tf.Tensor[];
      return { x: () => dx, bias: () => db };
    },
  });
}

/** The `gelu` override for webgpu: exact GELU in one dispatch, its gradient in one. */
export function webgpuGelu(x: tf.Tensor): tf.Tensor {
  registerGeluKernels();
  return tf.engine().runKernel(GELU_KERNEL, { x }, {}) as tf.Tensor;
}

/** `gelu(x + bias)` with `bias [D]` over the last axis of `x`, fused (webgpu only). */
export function webgpuBiasGelu(x: tf.Tensor, bias: tf.Tensor1D): tf.Tensor {
  registerGeluKernels();
  return tf.engine().runKernel(BIAS_GELU_KERNEL, { x, bias }, {}) as tf.Tensor;
}

/** Column sums of a 2-D tensor (webgpu only), for bias gradients: one tfjs kernel. */
export function webgpuColumnSum(x: tf.Tensor2D): tf.Tensor1D {
  registerGeluKernels();
  return tf.engine().runKernel(COLUMN_SUM_KERNEL, { x }, {}) as tf.Tensor1D;
}
