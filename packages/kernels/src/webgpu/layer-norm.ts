import * as tf from "@tensorflow/tfjs";
import { kernelArgs, makeProgram } from "./program";
import { runKernelSaving } from "./tape";
import { viewOf } from "./encode";
import { newTensorInfo, webgpuInternals } from "./flat-buffers";
import { encodeLayerNormGrad, layerNormFinishSums, partialsSize } from "./layer-norm-grad";
import { encodeStridedSums } from "./strided-sums";
import { layerNormRowCode, rowThreads, welfordDecl } from "./reductions";

/** tfjs kernel names of the fused LayerNorm (registered for the `webgpu` backend). */
export const LAYER_NORM_KERNEL = "SitLayerNorm";
export const LAYER_NORM_GRAD_KERNEL = "SitLayerNormGrad";

/**
 * `t` seen as the rows `[M, D]` of its last axis: the same buffer under another shape (what tfjs's
 * Reshape returns, without its kernel call), so the kernels take any leading shape.
 */
function rowsOf(t: tf.TensorInfo): tf.TensorInfo {
  const d = t.shape[t.shape.length - 1];
  return { ...t, shape: [tf.util.sizeFromShape(t.shape) / d, d] };
}

/** `y = (x − μ)·rstd·γ + β`, one workgroup per row of `x [..., D]`: one dispatch. */
function layerNormForward(args: unknown): tf.TensorInfo {
  const { inputs, backend, attrs } = kernelArgs(args);
  const { gamma, beta } = inputs;
  const x = rowsOf(inputs.x);
  const [m, d] = x.shape;
  const wg = rowThreads(d);
  const program = makeProgram({
    key: "sitLayerNorm",
    outputShape: [m, d],
    groups: m,
    threads: wg,
    variableNames: ["X", "Gamma", "Beta"],
    uniforms: "eps : f32,",
    code: `
  ${welfordDecl(wg)}
  fn main(index : i32) {
    let row = sitGroup();
    let tid = i32(localId.x);
    let d = uniforms.xShape[1];
    let ok = row < uniforms.xShape[0];
    let base = row * d;
    ${layerNormRowCode("X", "Gamma", "Beta", "uniforms.eps", (y) => `result[base + c] = ${y};`)}
  }`,
  });
  const y = backend.runWebGPUProgram(program, [x, gamma, beta], "float32", [
    { type: "float32", data: [attrs.eps as number] },
  ]);
  return { ...y, shape: inputs.x.shape };
}

/**
 * Gradients of LayerNorm from `dy`, `x`, `gamma` (statistics recomputed, not stored):
 * dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)) with ĝ = dy·γ and the partial sums of dγ = Σ dy·x̂ and
 * dβ = Σ dy over blocks of rows in one pass, then one pass that finishes dγ and dβ (2 dispatches,
 * encoded directly: layer-norm-grad.ts, shared with the fused block).
 */
function layerNormBackward(args: unknown): tf.TensorInfo[] {
  const { inputs, backend, attrs } = kernelArgs(args);
  const b = webgpuInternals(backend);
  const { dy, x, gamma } = inputs;
  const d = x.shape[x.shape.length - 1];
  const m = tf.util.sizeFromShape(x.shape) / d;
  const dx = newTensorInfo(b, x.shape);
  const [dgamma, dbeta] = [newTensorInfo(b, [d]), newTensorInfo(b, [d])];
  const partials = newTensorInfo(b, [partialsSize(m, d)]);
  const p = viewOf(b, partials);
  const views = { dy: viewOf(b, dy), x: viewOf(b, x), gamma: viewOf(b, gamma), dx: viewOf(b, dx) };
  encodeLayerNormGrad(b, { ...views, partials: p }, m, d, attrs.eps as number);
  encodeStridedSums(b, layerNormFinishSums(p, [viewOf(b, dgamma), viewOf(b, dbeta)], m, d));
  b.disposeData(partials.dataId);
  return [dx, dgamma, dbeta];
}

let registered = false;

/** Register the fused LayerNorm kernels and the forward's gradient with tfjs (once). */
export function registerLayerNormKernels(): void {
  if (registered) return;
  registered = true;
  tf.registerKernel({
    kernelName: LAYER_NORM_KERNEL,
    backendName: "webgpu",
    kernelFunc: layerNormForward as unknown as tf.KernelFunc,
  });
  tf.registerKernel({
    kernelName: LAYER_NORM_GRAD_KERNEL,
    backendName: "webgpu",
    kernelFunc: layerNormBackward as unknown as tf.KernelFunc,
  });
  tf.registerGradient({
    kernelName: LAYER_NORM_KERNEL,
    // x and gamma are saved by webgpuLayerNorm without tape copies (tape.ts).
    gradFunc: (dy, saved, attrs) => {
      const [x, gamma] = saved;
      const [dx, dgamma, dbeta] = tf
        .engine()
        .runKernel(LAYER_NORM_GRAD_KERNEL, { dy: dy as tf.Tensor, x, gamma }, attrs) as tf.Tensor[];
      return { x: () => dx, gamma: () => dgamma, beta: () => dbeta };
    },
  });
}

/**
 * The `layerNorm` override for webgpu: one fused kernel forward, one (2 dispatches) backward.
 * It takes `x` of any leading shape `[..., D]` (so `layerNorm` calls it without reshapes).
 */
export function webgpuLayerNorm<T extends tf.Tensor>(
  x: T,
  gamma: tf.Tensor1D,
  beta: tf.Tensor1D,
  eps: number,
): T {
  registerLayerNormKernels();
  return runKernelSaving(LAYER_NORM_KERNEL, { x, gamma, beta }, { eps }, () => [x, gamma])[0] as T;
}
