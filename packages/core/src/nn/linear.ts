import * as tf from "@tensorflow/tfjs";
import { checkNumber, checkShape } from "../errors";
import type { Rng } from "../rng";
import { kaimingUniform, truncNormal } from "./init";
import { Module } from "./module";

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
      const y = tf.matMul(x.reshape([-1, this.inFeatures]), this.weight);
      const yb = this.bias ? y.add(this.bias) : y;
      return yb.reshape([...lead, this.outFeatures]);
    });
  }
}
