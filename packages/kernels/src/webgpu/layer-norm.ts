import * as tf from "@tensorflow/tfjs";
import { kernelArgs } from "./program";
import { runKernelSaving } from "./tape";
import { layerNormWgsl } from "./block-wgsl";
import { encode, foldGroups, viewOf } from "./encode";
import { newTensorInfo, webgpuInternals } from "./flat-buffers";
import { encodeLayerNormGrad, layerNormFinishSums, partialsSize } from "./layer-norm-grad";
import { encodeStridedSums } from "./strided-sums";
import { rowThreads } from "./reductions";

/** tfjs kernel names of the fused LayerNorm (registered for the `webgpu` backend). */
export const LAYER_NORM_KERNEL = "SitLayerNorm";
export const LAYER_NORM_GRAD_KERNEL = "SitLayerNormGrad";

/**
 * `y = (x − μ)·rstd·γ + β`, one workgroup per row of `x [..., D]`: one dispatch, encoded directly
 * (encode.ts; a tfjs program made a bind group and a uniform buffer per call).
 */
function layerNormForward(args: unknown): tf.TensorInfo {
  const { inputs, backend, attrs } = kernelArgs(args);
  const b = webgpuInternals(backend);
  const { x, gamma, beta } = inputs;
  const d = x.shape[x.shape.length - 1];
  const m = d > 0 ? tf.util.sizeFromShape(x.shape) / d : 0;
  if (m === 0) return b.makeTensorInfo([...x.shape], "float32");
  const y = newTensorInfo(b, [...x.shape]);
  const wg = rowThreads(d);
  encode(
    b,
    `SitLayerNorm_${wg}`,
    () => layerNormWgsl(wg),
    [viewOf(b, x), viewOf(b, gamma), viewOf(b, beta), viewOf(b, y)],
    [{ i: m }, { i: d }, { f: attrs.eps as number }],
    foldGroups(b, m),
  );
  return y;
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
