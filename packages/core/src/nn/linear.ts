import * as tf from "@tensorflow/tfjs";
import { checkNumber, checkShape } from "../errors";
import type { Rng } from "../rng";
import { kaimingUniform, truncNormal } from "./init";
import { Module } from "./module";

/**
 * `x [M, in] · w [in, out]` whose gradient uses only plain products: tfjs's own MatMul gradient
 * multiplies with `transposeA`/`transposeB`, which on wasm runs ~10× slower than a plain product
 * (a [128, 4096]ᵀ·[128, 4096] weight gradient of SiT's projection head took seconds). The input
 * gradient `dy·wᵀ` is formed as `(w·dyᵀ)ᵀ` when that transposes fewer elements (a small batch
 * through a large weight).
 */
const plainMatMul = tf.customGrad(((x: tf.Tensor2D, w: tf.Tensor2D, save: tf.GradSaveFunc) => {
  save([x, w]);
  return {
    value: tf.matMul(x, w),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [xs, ws] = saved as tf.Tensor2D[];
      const [m, inF] = xs.shape;
      const outF = ws.shape[1];
      const dx =
        m * (inF + outF) < inF * outF
          ? tf.transpose(tf.matMul(ws, tf.transpose(dy)))
          : tf.matMul(dy as tf.Tensor2D, tf.transpose(ws));
      return [dx, tf.matMul(tf.transpose(xs), dy as tf.Tensor2D)];
    },
  };
}) as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (
  x: tf.Tensor2D,
  w: tf.Tensor2D,
) => tf.Tensor2D;

export interface LinearOptions {
  bias?: boolean;
  /** `trunc_normal` (std 0.02, bias 0: timm/SiT) or `pytorch` (Kaiming-uniform weight and bias). Default `trunc_normal`. */
  init?: "trunc_normal" | "pytorch";
  rng: Rng;
}

/**
 * Fully connected layer. The weight is stored `[in, out]` (tfjs's matMul layout, so the forward is
 * a plain `x·W` with no transpose); PyTorch's `[out, in]` is converted at the interop boundary
 * (`torchToSit` in @sit/core). Parameter names `weight`, `bias` as in PyTorch.
 */
export class Linear extends Module {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable | null;

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    options: LinearOptions,
  ) {
    super();
    checkNumber("inFeatures", inFeatures, { integer: true, min: 1 });
    checkNumber("outFeatures", outFeatures, { integer: true, min: 1 });
    const init = options.init ?? "trunc_normal";
    const w =
      init === "pytorch"
        ? kaimingUniform([inFeatures, outFeatures], inFeatures, options.rng)
        : truncNormal([inFeatures, outFeatures], options.rng);
    this.weight = this.registerParameter("weight", w, { torchLayout: { kind: "linear" } });
    this.bias =
      options.bias === false
        ? null
        : this.registerParameter(
            "bias",
            init === "pytorch"
              ? kaimingUniform([outFeatures], inFeatures, options.rng)
              : tf.zeros([outFeatures]),
          );
  }

  /** y = x·W + b over the last axis (any leading shape). */
  apply(x: tf.Tensor): tf.Tensor {
    checkShape("Linear input (last axis)", [x.shape[x.rank - 1]], [this.inFeatures]);
    return tf.tidy(() => {
      const lead = x.shape.slice(0, -1);
      const y = plainMatMul(
        x.reshape([-1, this.inFeatures]) as tf.Tensor2D,
        this.weight as tf.Tensor2D,
      );
      const yb = this.bias ? y.add(this.bias) : y;
      return yb.reshape([...lead, this.outFeatures]);
    });
  }
}
