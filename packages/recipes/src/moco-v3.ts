import * as tf from "@tensorflow/tfjs";
import { MLP, Module, Rng } from "@sit/core";
import { sitContrastiveLoss } from "@sit/losses";
import { type LaunchedStep, type StepResult, readLaunchedStep } from "@sit/train";
import type { VisionTransformer } from "@sit/vit";
import { type TwoViewBatch, twoViews } from "./batches";
import { gradientsByName } from "./gradients";
import { type MocoV3Config, type MocoV3ConfigInput, mocoV3Schema, parseConfig } from "./config";
import { ModuleRecipe } from "./recipe-base";
import { type SitNetwork, buildSitNetwork } from "./sit-network";

/** MoCo v3's student: the encoder (backbone + projector, followed by the teacher) and a predictor. */
export class MocoStudent extends Module {
  constructor(
    readonly encoder: SitNetwork,
    readonly predictor: MLP,
  ) {
    super();
    this.registerModule("encoder", encoder);
    this.registerModule("predictor", predictor);
  }
}

/**
 * MoCo v3 (Chen et al.) from the same blocks: clean views only; the student's projector and
 * predictor give queries, the EMA teacher (backbone + projector) gives keys;
 * `L = CL(q₁, k₂) + CL(q₂, k₁)` with SiT's contrastive loss (×2τ). The two views go through the
 * networks as one batch, as in SiT (MoCo v3 runs them separately: BatchNorm statistics differ).
 */
export class MocoV3Recipe extends ModuleRecipe<MocoStudent, TwoViewBatch, SitNetwork> {
  readonly name = "mocov3";
  declare readonly config: MocoV3Config;

  constructor(config: MocoV3Config) {
    const rng = Rng.seed(config.seed);
    const heads = { projection: config.projection, reconstruction: false };
    const encoder = buildSitNetwork(config.backbone, heads, rng.split());
    const { outDim } = config.projection;
    // MoCo v3's predictor: Linear → BN → ReLU → Linear (no final BN).
    const predictor = new MLP(
      [
        { in: outDim, out: config.predictorHidden, norm: "batch", activation: "relu" },
        { in: config.predictorHidden, out: outDim, norm: null, activation: null },
      ],
      { rng: rng.split() },
    );
    super(new MocoStudent(encoder, predictor), config);
    this.attachTeacher(encoder, () =>
      buildSitNetwork(config.backbone, heads, rng.split(), { dropPathRate: 0 }),
    );
    this.rngs.dropPath = rng.split();
  }

  protected backboneOf(network: MocoStudent | SitNetwork): VisionTransformer {
    return network instanceof MocoStudent ? network.encoder.backbone : network.backbone;
  }

  /** One step, its loss read back asynchronously (any backend). */
  async trainStep(batch: TwoViewBatch, step: number): Promise<StepResult> {
    return readLaunchedStep(await this.launchStep(batch, step));
  }

  override async launchStep(batch: TwoViewBatch, step: number): Promise<LaunchedStep> {
    const [x1, x2] = twoViews(batch);
    const hyper = this.beginStep(step);
    const B = x1.shape[0];
    const teacher = this.network("teacher");
    const values = tf.tidy(() => {
      const x = tf.concat([x1, x2], 0) as tf.Tensor4D;
      const k = teacher.forward(x).projection as tf.Tensor2D;
      const { loss, grads } = gradientsByName(this.student, () => {
        const z = this.student.encoder.forward(x, { rng: this.rngs.dropPath })
          .projection as tf.Tensor2D;
        const q = this.student.predictor.apply(z) as tf.Tensor2D;
        const half = (t: tf.Tensor2D, i: number) => t.slice([i * B, 0], [B, -1]);
        return {
          loss: sitContrastiveLoss(half(q, 0), half(q, 1), half(k, 0), half(k, 1), {
            temperature: this.config.temperature,
          }),
        };
      });
      this.applyGradients(grads, hyper);
      return tf.stack([loss, loss]);
    });
    return this.launched(values, ["contrastive"], hyper);
  }
}

/** Build MoCo v3 from a config (validated). */
export function createMoCoV3(config: MocoV3ConfigInput): MocoV3Recipe {
  return new MocoV3Recipe(parseConfig(mocoV3Schema, config, "mocov3"));
}
