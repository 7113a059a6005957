import * as tf from "@tensorflow/tfjs";
import {
  BatchNorm1d,
  LayerNorm,
  Linear,
  type MLP,
  ShapeError,
  activation as applyActivation,
  describeValue,
  invalidArgument,
} from "@sit/core";
import { gelu } from "./gelu";
import { layerNorm } from "./layer-norm";
import { webgpuBatchNormAct } from "./webgpu/batch-norm";
import { webgpuFusedLinear } from "./webgpu/gemm-linear";
import { webgpuFusedHeadsEnabled } from "./webgpu/heads-register";

interface Layer {
  linear: Linear;
  norm: BatchNorm1d | LayerNorm | null;
  activation: "relu" | "gelu" | null;
}

/** The MLP's layers in order, from its blocks and its children (named by Sequential index). */
function layersOf(mlp: MLP): Layer[] {
  const children = new Map(mlp.namedChildren());
  let index = 0;
  return mlp.blocks.map((block) => {
    const linear = children.get(String(index++));
    const norm = block.norm ? children.get(String(index++)) : null;
    if (block.activation) index++;
    if (
      !(linear instanceof Linear) ||
      (norm && !(norm instanceof BatchNorm1d || norm instanceof LayerNorm))
    )
      throw new Error("applyMlp: the MLP's children do not follow its blocks");
    return { linear, norm: norm as Layer["norm"], activation: block.activation ?? null };
  });
}

/** Whether the fused path takes `x` through `layers`: training-mode BatchNorms need M ≥ 2 rows. */
function fusable(x: tf.Tensor, layers: Layer[]): boolean {
  if (!webgpuFusedHeadsEnabled() || x.rank !== 2 || x.dtype !== "float32") return false;
  return layers.every(
    (l) =>
      !(l.norm instanceof BatchNorm1d) ||
      ((l.norm.training || !l.norm.runningMean) && x.shape[0] >= 2),
  );
}

/**
 * Run one of core's {@link MLP}s (a projection head: Linear → BatchNorm1d / LayerNorm →
 * ReLU / GELU blocks) on `x [M, in]`. On webgpu (the package's kernels on) each Linear is one GEMM
 * dispatch (two backward) and each training-mode BatchNorm1d with its activation one dispatch
 * (one backward), running statistics updated exactly as `BatchNorm1d.apply` updates them;
 * elsewhere, or for eval-mode norms, it is `mlp.apply(x)`.
 */
export function applyMlp(mlp: MLP, x: tf.Tensor): tf.Tensor {
  if (!(x instanceof tf.Tensor)) throw invalidArgument("x", x, "a tensor [M, in]");
  const layers = layersOf(mlp);
  if (!fusable(x, layers)) return mlp.apply(x);
  if (x.shape[1] !== mlp.inFeatures)
    throw new ShapeError(`applyMlp x: expected [M, ${mlp.inFeatures}], got ${describeValue(x)}`);
  return tf.tidy(() => {
    let h = x;
    for (const { linear, norm, activation } of layers) {
      h = webgpuFusedLinear(h, linear.weight, linear.bias);
      if (norm instanceof BatchNorm1d) {
        h = webgpuBatchNormAct(h as tf.Tensor2D, norm, activation ?? "none");
        continue;
      }
      if (norm) h = layerNorm(h, norm.weight, norm.bias, norm.eps);
      if (activation === "gelu") h = gelu(h);
      else if (activation) h = applyActivation(activation, h);
    }
    return h;
  });
}
