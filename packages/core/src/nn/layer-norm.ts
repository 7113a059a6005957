import * as tf from "@tensorflow/tfjs";
import { checkNumber, checkShape } from "../errors";
import { Module } from "./module";

/** LayerNorm over the last axis with learnable `weight` (γ=1) and `bias` (β=0), PyTorch semantics (biased variance). */
export class LayerNorm extends Module {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable;

  constructor(
    readonly dim: number,
    readonly eps = 1e-6,
  ) {
    super();
    checkNumber("dim", dim, { integer: true, min: 1 });
    checkNumber("eps", eps, { min: 0, minExclusive: true });
    this.weight = this.registerParameter("weight", tf.ones([dim]));
    this.bias = this.registerParameter("bias", tf.zeros([dim]));
  }

  apply(x: tf.Tensor): tf.Tensor {
    checkShape("LayerNorm input (last axis)", [x.shape[x.rank - 1]], [this.dim]);
    return tf.tidy(() => {
      const { mean, variance } = tf.moments(x, -1, true);
      return x
        .sub(mean)
        .mul(tf.rsqrt(variance.add(this.eps)))
        .mul(this.weight)
        .add(this.bias);
    });
  }
}
