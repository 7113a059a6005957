import * as tf from "@tensorflow/tfjs";
import { LayerNorm, Module, type Rng, checkNumber, invalidArgument } from "@sit/core";
import { type TransformerBlockWeights, transformerBlock } from "@sit/kernels";
import { Attention, Mlp } from "./layers";
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

  /** The block's layers as @sit/kernels' block weights (timm's names; for a fused kernel). */
  weights(): TransformerBlockWeights {
    return {
      norm1: this.norm1,
      qkv: this.attn.qkv,
      proj: this.attn.proj,
      norm2: this.norm2,
      fc1: this.mlp.fc1,
      fc2: this.mlp.fc2,
    };
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
      // On webgpu the whole block is one fused kernel per direction (no attention maps asked
      // for); elsewhere @sit/kernels composes it from LayerNorm, linear, attention and the fused
      // linear that carries each residual add and its drop-path factors.
      const dropScales = scales
        ? ([tf.tensor1d(scales[0]), tf.tensor1d(scales[1])] as [tf.Tensor1D, tf.Tensor1D])
        : null;
      return transformerBlock(x as tf.Tensor3D, this.weights(), {
        numHeads: this.numHeads,
        dropScales,
        returnAttention: options.returnAttention === true,
      }) as { output: tf.Tensor3D; attention?: tf.Tensor4D };
    });
  }
}
