import * as tf from "@tensorflow/tfjs";
import { Linear, Module, type Rng, ShapeError, checkNumber, describeValue } from "@sit/core";
import { gelu } from "@sit/kernels";
import { applyLinear } from "./layers";
import type { VitOutput } from "./vision-transformer";

function clsOf(input: VitOutput | tf.Tensor, dim: number): tf.Tensor {
  const cls = input instanceof tf.Tensor ? input : input?.cls;
  if (!(cls instanceof tf.Tensor) || cls.rank !== 2 || cls.shape[1] !== dim)
    throw new ShapeError(
      `input: expected a CLS tensor [B, ${dim}] or a ViT output, got ${describeValue(input)}`,
    );
  return cls;
}

/** Linear classifier on the CLS token (DINO's `LinearClassifier`: parameters `linear.*`). */
export class LinearClassifier extends Module {
  readonly linear: Linear;

  constructor(
    readonly dim: number,
    readonly numClasses: number,
    options: { rng: Rng },
  ) {
    super();
    checkNumber("dim", dim, { integer: true, min: 1 });
    checkNumber("numClasses", numClasses, { integer: true, min: 1 });
    this.linear = this.registerModule("linear", new Linear(dim, numClasses, { rng: options.rng }));
  }

  /** Logits `[B, numClasses]` from a ViT output or its CLS token `[B, D]`. */
  apply(input: VitOutput | tf.Tensor): tf.Tensor2D {
    return applyLinear(this.linear, clsOf(input, this.dim)) as tf.Tensor2D;
  }
}

/**
 * SiT's fine-tuning head: `concat(CLS, mean of patch tokens)` (2D) → Linear(2D, D) → GELU →
 * Linear(D, C). Parameters `0.*` and `2.*` (register it as `head` for SiT's `head.0.weight`, …).
 */
export class SitClassifier extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;

  constructor(
    readonly dim: number,
    readonly numClasses: number,
    options: { rng: Rng },
  ) {
    super();
    checkNumber("dim", dim, { integer: true, min: 1 });
    checkNumber("numClasses", numClasses, { integer: true, min: 1 });
    this.fc1 = this.registerModule("0", new Linear(2 * dim, dim, { rng: options.rng }));
    this.fc2 = this.registerModule("2", new Linear(dim, numClasses, { rng: options.rng }));
  }

  /** Logits `[B, numClasses]` from a ViT output (its `cls` and `patchTokens`). */
  apply(output: Pick<VitOutput, "cls" | "patchTokens">): tf.Tensor2D {
    const cls = clsOf(output as VitOutput, this.dim);
    const patches = output.patchTokens;
    if (
      !(patches instanceof tf.Tensor) ||
      patches.rank !== 3 ||
      patches.shape[2] !== this.dim ||
      patches.shape[0] !== cls.shape[0]
    )
      throw new ShapeError(
        `output.patchTokens: expected [${cls.shape[0]}, N, ${this.dim}], got ${describeValue(patches)}`,
      );
    return tf.tidy(() => {
      const features = tf.concat([cls, tf.mean(patches, 1)], 1);
      return applyLinear(this.fc2, gelu(applyLinear(this.fc1, features))) as tf.Tensor2D;
    });
  }
}
