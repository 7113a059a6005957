import * as tf from "@tensorflow/tfjs";
import { Module, Rng } from "@sit/core";
import { TransformerDecoder } from "@sit/decoder";
import { RandomTokenMasker, corruptViews } from "@sit/gmml";
import { patchify } from "@sit/kernels";
import { type LaunchedStep, type StepResult, readLaunchedStep } from "@sit/train";
import type { VisionTransformer } from "@sit/vit";
import type { TwoViewBatch } from "./batches";
import { gradientsByName } from "./gradients";
import { type MaeConfig, type MaeConfigInput, maeSchema, parseConfig } from "./config";
import { ModuleRecipe } from "./recipe-base";
import { buildBackbone } from "./sit-network";

/** MAE's trained network: the ViT encoder and the light transformer decoder. */
export class MaeNetwork extends Module {
  constructor(
    readonly backbone: VisionTransformer,
    readonly decoder: TransformerDecoder,
  ) {
    super();
    this.registerModule("backbone", backbone);
    this.registerModule("decoder", decoder);
  }
}

/**
 * MAE-style masked-token reconstruction (He et al.) from the same blocks: random-token masks
 * (75%), a light transformer decoder that puts a learned mask token at the masked positions, and
 * the MSE on the masked patches (per-patch normalised targets by default, MAE's `norm_pix_loss`).
 * Deviation, stated: the encoder sees every token, with the masked patches blanked in pixel space
 * (SimMIM-like input), where MAE drops them; the decoder and the loss are MAE's.
 */
export class MaeRecipe extends ModuleRecipe<MaeNetwork, TwoViewBatch, never> {
  readonly name = "mae";
  declare readonly config: MaeConfig;
  readonly masker: RandomTokenMasker;

  constructor(config: MaeConfig) {
    const rng = Rng.seed(config.seed);
    const backbone = buildBackbone(config.backbone, rng.split());
    const decoder = new TransformerDecoder({
      inDim: backbone.embedDim,
      gridSize: backbone.grid,
      patchSize: backbone.patchSize,
      outChans: backbone.inChans,
      ...config.decoder,
      rng: rng.split(),
    });
    super(new MaeNetwork(backbone, decoder), config);
    this.masker = new RandomTokenMasker({ ratio: config.maskRatio, patchSize: backbone.patchSize });
    this.rngs.mask = rng.split();
    this.rngs.dropPath = rng.split();
  }

  protected backboneOf(network: MaeNetwork): VisionTransformer {
    return network.backbone;
  }

  /** One step, its loss read back asynchronously (any backend). */
  async trainStep(batch: TwoViewBatch, step: number): Promise<StepResult> {
    return readLaunchedStep(await this.launchStep(batch, step));
  }

  override async launchStep(batch: TwoViewBatch, step: number): Promise<LaunchedStep> {
    const views = batch.views;
    const hyper = this.beginStep(step);
    const { corrupted, masks, tokenMasks } = corruptViews(this.masker, views, this.rngs.mask);
    try {
      const values = tf.tidy(() => {
        const p = this.student.backbone.patchSize;
        let target = patchify(tf.concat(views, 0), p);
        if (this.config.normPixLoss) {
          const { mean, variance } = tf.moments(target, -1, true);
          target = target.sub(mean).div(tf.sqrt(variance.add(1e-6)));
        }
        const input = tf.concat(corrupted, 0) as tf.Tensor4D;
        const tokenMask = tf.concat(tokenMasks, 0);
        const { loss, grads } = gradientsByName(this.student, () => {
          const tokens = this.student.backbone.forward(input, {
            rng: this.rngs.dropPath,
          }).patchTokens;
          const pred = this.student.decoder.forward(tokens, { mask: tokenMask }).patches;
          const perPatch = tf.mean(tf.square(tf.sub(pred, target)), -1);
          return {
            loss: tf.div(tf.sum(tf.mul(perPatch, tokenMask)), tf.sum(tokenMask)) as tf.Scalar,
          };
        });
        this.applyGradients(grads, hyper);
        return tf.stack([loss, loss]);
      });
      return this.launched(values, ["reconstruction"], hyper);
    } finally {
      tf.dispose([...corrupted, ...masks, ...tokenMasks]);
    }
  }
}

/** Build the MAE-style recipe from a config (validated). */
export function createMAE(config: MaeConfigInput): MaeRecipe {
  return new MaeRecipe(parseConfig(maeSchema, config, "mae"));
}
