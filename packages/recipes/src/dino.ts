import * as tf from "@tensorflow/tfjs";
import { ConfigError, Module, Rng, ShapeError } from "@sit/core";
import { DINO_LOSS_DEFAULTS, DinoLoss } from "@sit/losses";
import { type LaunchedStep, type StepResult, readLaunchedStep, type RecipeState } from "@sit/train";
import type { VisionTransformer } from "@sit/vit";
import { z } from "zod";
import type { TwoViewBatch } from "./batches";
import { backboneSchema, optimSchema, parseConfig } from "./config";
import { DINO_HEAD_DEFAULTS, DinoHead } from "./dino-head";
import { gradientsByName } from "./gradients";
import { ModuleRecipe } from "./recipe-base";
import { buildBackbone } from "./sit-network";

const positiveInt = z.number().int().positive();
const range = z.tuple([z.number().gt(0).lte(1), z.number().gt(0).lte(1)]);

/**
 * DINO (Caron et al. 2021) with the defaults of its main_dino.py for ViTs: head 2048 → 256 →
 * 65,536 with the last layer frozen for the first epoch; τs 0.1, τt 0.04 (warm-up from 0.04 over
 * 0 epochs: the paper's longer runs warm 0.04 → 0.07 over 30); centre momentum 0.9; teacher
 * momentum 0.996 → 1 (cosine); weight decay 0.04 → 0.4; 2 global + 8 local crops.
 */
export const dinoSchema = z
  .object({
    backbone: backboneSchema.default({}),
    head: z
      .object({
        hidden: positiveInt.default(DINO_HEAD_DEFAULTS.hidden),
        bottleneck: positiveInt.default(DINO_HEAD_DEFAULTS.bottleneck),
        outDim: positiveInt.default(DINO_HEAD_DEFAULTS.outDim),
      })
      .strict()
      .default({}),
    /** The crops the recipe expects (and `sit pretrain` draws): 2 global + `nLocal` local. */
    multiCrop: z
      .object({
        nLocal: z.number().int().min(0).default(8),
        /** Local crop size (default 96/224 of the image size, rounded to whole patches). */
        localSize: positiveInt.optional(),
        globalScale: range.default([0.4, 1]),
        localScale: range.default([0.05, 0.4]),
      })
      .strict()
      .default({}),
    optim: optimSchema.extend({
      weightDecayEnd: z.number().finite().min(0).default(0.4),
    }),
    studentTemperature: z.number().positive().default(DINO_LOSS_DEFAULTS.studentTemperature),
    teacherTemperature: z.number().positive().default(DINO_LOSS_DEFAULTS.teacherTemperature),
    warmupTeacherTemperature: z
      .number()
      .positive()
      .default(DINO_LOSS_DEFAULTS.warmupTeacherTemperature),
    warmupTeacherTemperatureEpochs: z.number().int().min(0).default(0),
    centerMomentum: z.number().min(0).max(1).default(DINO_LOSS_DEFAULTS.centerMomentum),
    /** Epochs during which the head's last layer is not updated (DINO: 1). */
    freezeLastLayerEpochs: z.number().int().min(0).default(1),
    momentum: z
      .object({
        base: z.number().min(0).max(1).default(0.996),
        final: z.number().min(0).max(1).default(1),
      })
      .strict()
      .default({}),
    seed: z.number().int().default(0),
  })
  .strict();

export type DinoConfig = z.output<typeof dinoSchema>;
export type DinoConfigInput = z.input<typeof dinoSchema>;

/** The local crop size of a DINO config: given, or DINO's 96/224 of the image in whole patches. */
export function dinoLocalSize(config: DinoConfig, imgSize: number, patchSize: number): number {
  if (config.multiCrop.localSize !== undefined) return config.multiCrop.localSize;
  return Math.max(1, Math.round((imgSize * 96) / 224 / patchSize)) * patchSize;
}

/** A ViT with DINO's head (DINO's `MultiCropWrapper`): crops of one size go through the ViT together. */
export class DinoNetwork extends Module {
  constructor(
    readonly backbone: VisionTransformer,
    readonly head: DinoHead,
  ) {
    super();
    this.registerModule("backbone", backbone);
    this.registerModule("head", head);
  }

  /** Head outputs of `crops` (each `[B, h, w, C]`), concatenated in crop order: `[nCrops·B, K]`. */
  forward(crops: tf.Tensor4D[], options: { rng?: Rng } = {}): tf.Tensor2D {
    return tf.tidy(() => {
      const cls: tf.Tensor2D[] = [];
      let i = 0;
      while (i < crops.length) {
        // Consecutive crops of one resolution form one backbone call (as DINO's wrapper).
        let j = i + 1;
        while (j < crops.length && tf.util.arraysEqual(crops[j].shape, crops[i].shape)) j++;
        const group = j - i === 1 ? crops[i] : tf.concat(crops.slice(i, j), 0);
        cls.push(this.backbone.forward(group, options.rng ? { rng: options.rng } : {}).cls);
        i = j;
      }
      return this.head.apply(cls.length === 1 ? cls[0] : tf.concat(cls, 0));
    });
  }
}

/** The views of a multi-crop batch: at least 2, the first two of one shape (the global crops). */
export function multiCropViews(batch: TwoViewBatch, name = "batch"): tf.Tensor4D[] {
  const views = (batch as TwoViewBatch | undefined)?.views;
  if (!Array.isArray(views) || views.length < 2)
    throw new ConfigError(
      `${name}.views: expected 2 global crops then the local crops (NHWC tensors), got ${Array.isArray(views) ? `${views.length} views` : String(views)}`,
    );
  const B = views[0].shape[0];
  for (const [i, v] of views.entries())
    if (!(v instanceof tf.Tensor) || v.rank !== 4 || v.shape[0] !== B)
      throw new ShapeError(
        `${name}.views[${i}]: expected a [${B}, H, W, C] tensor, got ${v instanceof tf.Tensor ? `[${v.shape}]` : String(v)}`,
      );
  if (!tf.util.arraysEqual(views[0].shape, views[1].shape))
    throw new ShapeError(
      `${name}.views: expected two global crops of one shape first, got [${views[0].shape}] and [${views[1].shape}]`,
    );
  return views;
}

/**
 * DINO from the blocks: student ViT + {@link DinoHead} on every crop, EMA teacher on the 2 global
 * crops, {@link DinoLoss} (centering + sharpening, teacher-temperature warm-up), per-tensor
 * clipping, AdamW with the lr/wd schedules, EMA update, then the centre update. During the first
 * `freezeLastLayerEpochs` the head's last layer gets a zero gradient: its effective weight `v/‖v‖`
 * does not change (decoupled weight decay only rescales `v`), as DINO's cancelled gradient.
 */
export class DinoRecipe extends ModuleRecipe<DinoNetwork, TwoViewBatch, DinoNetwork> {
  readonly name = "dino";
  declare readonly config: DinoConfig;
  readonly loss: DinoLoss;

  constructor(config: DinoConfig) {
    const rng = Rng.seed(config.seed);
    const build = (r: Rng, dropPathRate?: number) => {
      const backbone = buildBackbone(
        config.backbone,
        r.split(),
        dropPathRate === undefined ? {} : { dropPathRate },
      );
      return new DinoNetwork(
        backbone,
        new DinoHead(backbone.embedDim, { ...config.head, rng: r.split() }),
      );
    };
    super(build(rng.split()), config);
    this.attachTeacher(this.student, () => build(rng.split(), 0));
    this.rngs.dropPath = rng.split();
    this.loss = new DinoLoss(config.head.outDim, {
      nGlobal: 2,
      studentTemperature: config.studentTemperature,
      teacherTemperature: config.teacherTemperature,
      warmupTeacherTemperature: config.warmupTeacherTemperature,
      warmupSteps: config.warmupTeacherTemperatureEpochs * config.optim.stepsPerEpoch,
      centerMomentum: config.centerMomentum,
    });
  }

  protected backboneOf(network: DinoNetwork): VisionTransformer {
    return network.backbone;
  }

  /** One step, its loss read back asynchronously (any backend). */
  async trainStep(batch: TwoViewBatch, step: number): Promise<StepResult> {
    return readLaunchedStep(await this.launchStep(batch, step));
  }

  override async launchStep(batch: TwoViewBatch, step: number): Promise<LaunchedStep> {
    const crops = multiCropViews(batch);
    const hyper = this.beginStep(step);
    const frozen = step < this.config.freezeLastLayerEpochs * this.config.optim.stepsPerEpoch;
    const teacher = this.network("teacher");
    const values = tf.tidy(() => {
      const t = teacher.forward(crops.slice(0, 2));
      const { loss, grads } = gradientsByName(this.student, () => ({
        loss: this.loss.loss(this.student.forward(crops, { rng: this.rngs.dropPath }), t, step),
      }));
      if (frozen)
        grads["head.last_layer.weight_v"] = tf.zerosLike(grads["head.last_layer.weight_v"]);
      this.applyGradients(grads, hyper);
      this.loss.update(t);
      return tf.stack([loss, loss]);
    });
    return this.launched(values, ["dino"], hyper);
  }

  /** The base state plus the loss centre (DINO's state besides the networks). */
  override saveState(): RecipeState {
    const s = super.saveState();
    return { ...s, tensors: { ...s.tensors, "loss.center": this.loss.center } };
  }

  override loadState(state: RecipeState): void {
    super.loadState(state);
    const c = state.tensors["loss.center"];
    if (!c)
      throw new ConfigError(
        'state.tensors["loss.center"]: expected the DINO loss centre in the checkpoint, got none',
      );
    this.loss.center.assign(c);
  }

  override dispose(): void {
    super.dispose();
    this.loss.dispose();
  }
}

/** Build DINO from a config (validated; DINO's defaults for everything not given). */
export function createDINO(config: DinoConfigInput): DinoRecipe {
  return new DinoRecipe(parseConfig(dinoSchema, config, "dino"));
}
