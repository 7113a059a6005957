import * as tf from "@tensorflow/tfjs";
import { LayerNorm, Module, type Rng, checkNumber, invalidArgument } from "@sit/core";
import { Attention, Mlp, applyNorm } from "./layers";
import { VIT_DEFAULTS } from "./presets";

/** Options of {@link Block}. */
export interface BlockOptions {
  /** Hidden width of the MLP as a multiple of D. Default 4. */
  mlpRatio?: number;
  /** Bias on the qkv projection. Default true. */
  qkvBias?: boolean;
  /** LayerNorm epsilon. Default 1e-6. */
  layerNormEps?: number;
  /** Stochastic-depth probability of both residual branches. Default 0. */
  dropPath?: number;
  /** Generator of the initial weights. */
  rng: Rng;
}

/**
 * Per-sample factors (0, or 1/keep) for stochastic depth (timm's `drop_path`), drawn on the host
 * from `rng` so that a seed fixes them on every backend.
 */
function drawDropScale(batch: number, dropProb: number, rng: Rng): Float32Array {
  const keep = 1 - dropProb;
  const scale = new Float32Array(batch);
  for (let i = 0; i < batch; i++) scale[i] = rng.float() < keep ? 1 / keep : 0;
  return scale;
}

/** Drop-path factors of a block's two branches for one batch (see {@link Block.drawDropScales}). */
export type DropScales = [Float32Array, Float32Array];

/**
 * Pre-norm transformer block (timm/DINO): `x += DropPath(Attn(LN(x)))`,
 * `x += DropPath(MLP(LN(x)))`. Parameters `norm1`, `attn.qkv`, `attn.proj`, `norm2`, `mlp.fc1`,
 * `mlp.fc2`.
 */
export class Block extends Module {
  readonly norm1: LayerNorm;
  readonly attn: Attention;
  readonly norm2: LayerNorm;
  readonly mlp: Mlp;
  readonly dropPath: number;

  constructor(
    readonly dim: number,
    readonly numHeads: number,
    options: BlockOptions,
  ) {
    super();
    const mlpRatio = checkNumber("mlpRatio", options.mlpRatio ?? VIT_DEFAULTS.mlpRatio, {
      min: 0,
      minExclusive: true,
    });
    this.dropPath = checkNumber("dropPath", options.dropPath ?? 0, {
      min: 0,
      max: 1,
      maxExclusive: true,
    });
    const eps = options.layerNormEps ?? VIT_DEFAULTS.layerNormEps;
    this.norm1 = this.registerModule("norm1", new LayerNorm(dim, eps));
    this.attn = this.registerModule(
      "attn",
      new Attention(dim, numHeads, {
        qkvBias: options.qkvBias ?? VIT_DEFAULTS.qkvBias,
        rng: options.rng,
      }),
    );
    this.norm2 = this.registerModule("norm2", new LayerNorm(dim, eps));
    this.mlp = this.registerModule("mlp", new Mlp(dim, Math.round(dim * mlpRatio), options.rng));
  }

  /**
   * The per-sample drop-path factors of both branches for a batch of `batch`, or null when this
   * block drops nothing (eval mode, or rate 0). Drawn once so that a recomputation (gradient
   * checkpointing) sees the same ones.
   */
  drawDropScales(batch: number, rng: Rng | undefined): DropScales | null {
    if (!this.training || this.dropPath === 0) return null;
    if (rng === undefined)
      throw invalidArgument(
        "options.rng",
        rng,
        "an Rng (train mode with drop path > 0 draws which samples skip a branch)",
      );
    return [drawDropScale(batch, this.dropPath, rng), drawDropScale(batch, this.dropPath, rng)];
  }

  /**
   * `x [B, N, D]` → `[B, N, D]`. In train mode with a non-zero drop-path rate, the per-sample
   * factors come from `dropScales` or are drawn from `rng` (one of them is then required).
   * `returnAttention` adds the block's attention probabilities `[B, H, N, N]`.
   */
  apply(
    x: tf.Tensor,
    options: { rng?: Rng; returnAttention?: boolean; dropScales?: DropScales | null } = {},
  ): { output: tf.Tensor3D; attention?: tf.Tensor4D } {
    const b = x.shape[0];
    const scales =
      options.dropScales !== undefined ? options.dropScales : this.drawDropScales(b, options.rng);
    return tf.tidy(() => {
      // Each residual add (with its drop-path factors) rides in its branch's last GEMM: one
      // kernel on webgpu; elsewhere the same mul and add as before.
      const [s0, s1] = scales ? [tf.tensor1d(scales[0]), tf.tensor1d(scales[1])] : [null, null];
      const a = this.attn.apply(applyNorm(this.norm1, x), options.returnAttention === true, x, s0);
      const h = a.output;
      const output = this.mlp.apply(applyNorm(this.norm2, h), h, s1) as tf.Tensor3D;
      return a.attention ? { output, attention: a.attention } : { output };
    });
  }
}
