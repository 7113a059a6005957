import * as tf from "@tensorflow/tfjs";
import { checkNumber, invalidArgument } from "../errors";
import { Rng } from "../rng";
import { Module } from "./module";

/**
 * Stochastic depth on a residual branch (timm's `drop_path`): each sample of the batch (axis 0)
 * is zeroed with probability `dropProb`, and kept samples are scaled by `1/(1−dropProb)` so the
 * expectation is unchanged. The keep/drop draws come from `rng` (one `float()` per sample), so a
 * seed fixes them on every backend. Returns `x` unchanged when `dropProb` is 0.
 */
export function dropPath(x: tf.Tensor, dropProb: number, rng: Rng): tf.Tensor {
  checkNumber("dropProb", dropProb, { min: 0, max: 1 });
  if (!(rng instanceof Rng)) throw invalidArgument("rng", rng, "an Rng");
  if (x.rank < 1) throw invalidArgument("x", x, "a tensor with a batch axis (rank ≥ 1)");
  if (dropProb === 0) return x;
  const keepProb = 1 - dropProb;
  const n = x.shape[0];
  const mask = new Float32Array(n);
  // timm divides by keep_prob only when it is positive; with dropProb 1 every sample is zeroed.
  const scale = keepProb > 0 ? 1 / keepProb : 0;
  for (let i = 0; i < n; i++) mask[i] = rng.float() < keepProb ? scale : 0;
  return tf.tidy(() => x.mul(tf.tensor(mask, [n, ...new Array(x.rank - 1).fill(1)], "float32")));
}

/** Options of {@link DropPath}. */
export interface DropPathOptions {
  /** Generator of the per-sample draws; or give `seed`. */
  rng?: Rng;
  /** Seed for a private generator when `rng` is not given. */
  seed?: number;
}

/**
 * Stochastic depth as a module (no parameters): active in train mode only, identity in eval mode
 * or when `dropProb` is 0. See {@link dropPath}.
 */
export class DropPath extends Module {
  private readonly rng: Rng;

  constructor(
    readonly dropProb: number,
    options: DropPathOptions = {},
  ) {
    super();
    checkNumber("dropProb", dropProb, { min: 0, max: 1 });
    if (options.rng !== undefined && !(options.rng instanceof Rng))
      throw invalidArgument("options.rng", options.rng, "an Rng");
    if (options.rng === undefined && options.seed === undefined && dropProb > 0)
      throw invalidArgument(
        "options",
        options,
        "{ rng } or { seed } (DropPath draws random masks)",
      );
    this.rng = options.rng ?? Rng.seed(options.seed ?? 0);
  }

  /** Apply drop path; `rng` overrides the module's generator for this call. */
  apply(x: tf.Tensor, rng?: Rng): tf.Tensor {
    if (!this.training || this.dropProb === 0) return x;
    return dropPath(x, this.dropProb, rng ?? this.rng);
  }
}
