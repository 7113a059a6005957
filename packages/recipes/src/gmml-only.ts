import * as tf from "@tensorflow/tfjs";
import { Rng } from "@sit/core";
import { GmmlMasker, corruptViews } from "@sit/gmml";
import { maskedReconstructionLoss } from "@sit/losses";
import { type LaunchedStep, type StepResult, readLaunchedStep } from "@sit/train";
import type { VisionTransformer } from "@sit/vit";
import type { TwoViewBatch } from "./batches";
import { gradientsByName } from "./gradients";
import {
  type GmmlOnlyConfig,
  type GmmlOnlyConfigInput,
  gmmlOnlySchema,
  parseConfig,
} from "./config";
import { ModuleRecipe } from "./recipe-base";
import { type SitNetwork, buildSitNetwork } from "./sit-network";

/**
 * GMML alone (Atito et al., GMML repo): corrupt every view with GMML, reconstruct the clean views
 * from the corrupted ones with SiT's reconstruction head, masked L1. No teacher, no contrastive term.
 */
export class GmmlOnlyRecipe extends ModuleRecipe<SitNetwork, TwoViewBatch, never> {
  readonly name = "gmml";
  declare readonly config: GmmlOnlyConfig;
  readonly masker: GmmlMasker;

  constructor(config: GmmlOnlyConfig) {
    const rng = Rng.seed(config.seed);
    super(
      buildSitNetwork(config.backbone, { projection: null, reconstruction: true }, rng.split()),
      config,
    );
    this.rngs.mask = rng.split();
    this.rngs.dropPath = rng.split();
    this.masker = new GmmlMasker({ ...config.gmml, patchSize: this.student.backbone.patchSize });
  }

  protected backboneOf(network: SitNetwork): VisionTransformer {
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
        const clean = tf.concat(views, 0) as tf.Tensor4D;
        const input = tf.concat(corrupted, 0) as tf.Tensor4D;
        const mask = tf.concat(masks, 0);
        const { loss, grads } = gradientsByName(this.student, () => {
          const rec = this.student.forward(input, { rng: this.rngs.dropPath })
            .reconstruction as tf.Tensor4D;
          return {
            loss: maskedReconstructionLoss(rec, clean, mask, { type: this.config.reconstruction }),
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

/** Build GMML-only from a config (validated; defaults as SiT's GMML settings). */
export function createGmmlOnly(config: GmmlOnlyConfigInput): GmmlOnlyRecipe {
  return new GmmlOnlyRecipe(parseConfig(gmmlOnlySchema, config, "gmml"));
}
