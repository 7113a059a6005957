import * as tf from "@tensorflow/tfjs";
import { ConfigError, Rng } from "@sit/core";
import {
  type ScaledGradients,
  flatAdamwStepValues,
  flatEmaStepValues,
  lossSum,
  withPrecision,
} from "@sit/kernels";
import type { EmaTeacher } from "@sit/momentum";
import {
  AttentionMasker,
  GmmlMasker,
  clsAttentionScores,
  corruptViewsStacked,
  planStackedViews,
} from "@sit/gmml";
import { maskedReconstructionLoss, sitContrastiveLossOfViews } from "@sit/losses";
import { type LaunchedStep, type StepResult, readLaunchedStep } from "@sit/train";
import type { VisionTransformer } from "@sit/vit";
import {
  type SitConfig,
  type SitConfigInput,
  attentionMaskSchema,
  parseConfig,
  sitSchema,
} from "./config";
import { type TwoViewBatch, twoViews } from "./batches";
import type { DrawnStep } from "./captured-steps";
import { gradientsByName } from "./gradients";
import { ModuleRecipe, type StepHyper } from "./recipe-base";
import { type SitNetwork, buildSitNetwork } from "./sit-network";

/** Two tensors, one per view. */
export type ViewPair = readonly [tf.Tensor4D, tf.Tensor4D];

/** Both views of one field: a pair, or stacked view-major as one `[2B, …]` tensor. */
export type Views = ViewPair | tf.Tensor4D;

/** The inputs of one SiT step once the random parts are drawn, both views in each field. */
export interface SitStepInputs {
  /** The two augmented views `[B, H, W, C]`. */
  clean: Views;
  /** The same views after GMML corruption. */
  corrupted: Views;
  /** Their pixel masks `[B, H, W, 1]`, 1 = corrupted. */
  masks: Views;
}

/** The views stacked `[2B, …]` (a stacked tensor is returned as is: no copy, no kernel call). */
function stackedViews(views: Views): tf.Tensor4D {
  return views instanceof tf.Tensor ? views : (tf.concat([...views], 0) as tf.Tensor4D);
}

/** Everything one step computed, for inspection and parity tests (tensors owned by the caller). */
export interface SitStepDetails {
  loss: number;
  contrastive: number;
  reconstruction: number;
  studentProjection: tf.Tensor2D;
  teacherProjection: tf.Tensor2D;
  reconstructionImages: tf.Tensor4D;
  /** Gradients before clipping, by the student's parameter names. */
  grads: Record<string, tf.Tensor>;
}

type StepValues = Pick<SitStepDetails, "loss" | "contrastive" | "reconstruction">;

/** The step's values from its losses `[loss, contrastive, reconstruction]` and, with `out`, its tensors. */
function detailsOf(
  out: { s?: tf.Tensor; t?: tf.Tensor; rec?: tf.Tensor; grads?: Record<string, tf.Tensor> } | null,
  [loss, contrastive, reconstruction]: Float32Array,
): SitStepDetails | StepValues {
  if (!out) return { loss, contrastive, reconstruction };
  return {
    loss,
    contrastive,
    reconstruction,
    studentProjection: out.s as tf.Tensor2D,
    teacherProjection: out.t as tf.Tensor2D,
    reconstructionImages: out.rec as tf.Tensor4D,
    grads: out.grads as Record<string, tf.Tensor>,
  };
}

/**
 * SiT v3 (spec §1): GMML-corrupt both views; student on the corrupted views → projection `s` and
 * reconstruction `x̂`; EMA teacher on the clean views → projection `t`;
 * `L = Lc(s, t) + λ·Lr(x̂, x, mask)` with `Lc = CL(s₁, t₂) + CL(s₂, t₁)` (MoCo-v3 form, ×2τ) and
 * `Lr` the masked L1 pooled over both views; per-tensor clipping, AdamW with the lr/wd schedules,
 * then the EMA update with the momentum schedule.
 */
export class SitRecipe extends ModuleRecipe<SitNetwork, TwoViewBatch, SitNetwork> {
  readonly name = "sit";
  declare readonly config: SitConfig;
  readonly teacher: EmaTeacher<SitNetwork>;
  readonly masker: GmmlMasker;
  /** The attention-guided masker when `masking` is "attention" (GMML's `masker` is unused then). */
  readonly attentionMasker: AttentionMasker | null;

  constructor(config: SitConfig) {
    const rng = Rng.seed(config.seed);
    const heads = { projection: config.projection, reconstruction: true };
    super(buildSitNetwork(config.backbone, heads, rng.split()), config);
    // The teacher is built without drop path; EmaTeacher copies the student's weights into it.
    this.teacher = this.attachTeacher(this.student, () =>
      buildSitNetwork(config.backbone, heads, rng.split(), { dropPathRate: 0 }),
    );
    this.rngs.mask = rng.split();
    this.rngs.dropPath = rng.split();
    this.masker = new GmmlMasker({ ...config.gmml, patchSize: this.student.backbone.patchSize });
    this.attentionMasker =
      config.masking === "attention"
        ? new AttentionMasker({
            ...attentionMaskSchema.parse(config.attentionMask ?? {}),
            patchSize: this.student.backbone.patchSize,
          })
        : null;
  }

  protected backboneOf(network: SitNetwork): VisionTransformer {
    return network.backbone;
  }

  /** The student's heads. */
  get heads() {
    return { projection: this.student.clsHead, reconstruction: this.student.recHead };
  }

  /**
   * One SiT step on a two-view batch, its losses left on the device: draws the GMML corruption,
   * then the work of {@link SitRecipe.stepOnInputs}. With attention-guided masking it reads the
   * teacher's attention scores back first (the masks depend on them).
   */
  /** One step, its loss read back asynchronously (any backend). */
  async trainStep(batch: TwoViewBatch, step: number): Promise<StepResult> {
    return readLaunchedStep(await this.launchStep(batch, step));
  }

  override async launchStep(batch: TwoViewBatch, step: number): Promise<LaunchedStep> {
    const clean = twoViews(batch);
    const hyper = this.beginStep(step);
    await this.prepareLossScaler();
    // GMML masks in f32 on webgpu: a step captured once and replayed (captured-steps.ts).
    if (!this.attentionMasker && !this.lossScaler && tf.getBackend() === "webgpu") {
      const losses = this.stepCapture.launch(
        clean,
        () => this.drawStep(clean, hyper),
        (views) => this.gmmlStepLosses(views, hyper),
      );
      return this.launched(losses, ["contrastive", "reconstruction"], hyper);
    }
    // With attention-guided masking the teacher runs first: its forward on the clean views gives
    // both its projections and the last block's CLS attention that ranks the patches to mask.
    const teacher = this.attentionMasker ? this.teacherWithScores(clean) : null;
    // GMML hands the views back stacked (the step runs both views as one batch): one concat and
    // one corruption kernel instead of two corruptions and three concats.
    const drawn = teacher
      ? await this.attentionMasker!.maskViewsAsync(clean, teacher.scores, this.rngs.mask)
      : null;
    const stacked = drawn ? null : corruptViewsStacked(this.masker, [...clean], this.rngs.mask);
    const inputs: SitStepInputs = stacked ?? {
      clean,
      corrupted: [drawn!.corrupted[0], drawn!.corrupted[1]],
      masks: [drawn!.masks[0], drawn!.masks[1]],
    };
    try {
      const out = this.stepTensors(inputs, hyper, false, teacher?.projection);
      if (out.scaled) await this.applyScaledGradients(out.scaled, hyper);
      return this.launched(out.losses, ["contrastive", "reconstruction"], hyper);
    } finally {
      tf.dispose(
        stacked
          ? [stacked.clean, stacked.corrupted, stacked.masks, ...stacked.tokenMasks]
          : [...drawn!.corrupted, ...drawn!.masks, ...drawn!.tokenMasks],
      );
      if (teacher) tf.dispose([teacher.projection, ...teacher.scores]);
    }
  }

  /** A GMML-masked f32 step's tfjs work on `clean`: its losses `[loss, Lc, Lr]`, left on the device. */
  private gmmlStepLosses(clean: ViewPair, hyper: StepHyper): tf.Tensor {
    const stacked = corruptViewsStacked(this.masker, [...clean], this.rngs.mask);
    try {
      return this.stepTensors(stacked, hyper, false).losses;
    } finally {
      tf.dispose([stacked.clean, stacked.corrupted, stacked.masks, ...stacked.tokenMasks]);
    }
  }

  /**
   * The values {@link SitRecipe.gmmlStepLosses} writes to the device, in its order, drawn from
   * copies of the generators: the GMML plan's pixel sources (and noise), the student's drop-path
   * factors block by block, the pixel masks (read first by the reconstruction loss), AdamW's and
   * the EMA's step values. `commit` advances the generators and counts the optimiser's step.
   */
  private drawStep(clean: ViewPair, hyper: StepHyper): DrawnStep {
    const mask = this.rngs.mask.clone();
    const dropPath = this.rngs.dropPath.clone();
    const shape = clean[0].shape;
    const plan = planStackedViews(this.masker, shape, clean.length, mask);
    const rows = clean.length * shape[0];
    const scales = this.student.backbone.blocks.flatMap(
      (b) => b.drawDropScales(rows, dropPath) ?? [],
    );
    this.optimizer.setLr(hyper.lr).setWeightDecay(hyper.wd);
    const uploads: ArrayBufferView[] = [
      plan.source,
      ...(plan.noise.length > 0 ? [plan.noise] : []),
      ...scales,
      plan.masks,
      flatAdamwStepValues(this.optimizer.nextStepSettings()),
      ...(hyper.momentum < 1 ? [flatEmaStepValues(hyper.momentum)] : []),
    ];
    return {
      uploads,
      commit: () => {
        this.rngs.mask = mask;
        this.rngs.dropPath = dropPath;
        this.optimizer.countReplayedStep();
      },
    };
  }

  /** The teacher on the clean views: projections `[2B, D]` and per-view CLS-attention scores `[B, N]`. */
  teacherWithScores(clean: ViewPair): { projection: tf.Tensor2D; scores: tf.Tensor2D[] } {
    const B = clean[0].shape[0];
    const t = this.teacher.module;
    return tf.tidy(() => {
      const f = t.backbone.forward(tf.concat([...clean], 0), { attentions: "last" });
      const scores = clsAttentionScores(f.attentions![0]);
      return {
        projection: t.clsHead!.apply(f.cls) as tf.Tensor2D,
        scores: [0, 1].map((i) => tf.slice(scores, [i * B, 0], [B, -1]) as tf.Tensor2D),
      };
    });
  }

  /**
   * One step from given inputs (no random draws besides drop path): forward, losses, gradients,
   * clipping + AdamW, EMA. With `details`, also returns the projections, the reconstruction and the
   * gradients before clipping (the caller disposes them).
   */
  stepOnInputs(inputs: SitStepInputs, hyper: StepHyper, details: true): SitStepDetails;
  stepOnInputs(inputs: SitStepInputs, hyper: StepHyper, details?: false): StepValues;
  stepOnInputs(
    inputs: SitStepInputs,
    hyper: StepHyper,
    details = false,
  ): SitStepDetails | StepValues {
    if (this.lossScaler)
      throw new ConfigError(
        'stepOnInputs: precision "mixed-f16" reads whether the gradients are finite asynchronously; use stepOnInputsAsync',
      );
    const out = this.stepTensors(inputs, hyper, details);
    // A synchronous read (cpu, wasm, tensorflow): trainStep reads asynchronously instead.
    const values = out.losses.dataSync() as Float32Array;
    out.losses.dispose();
    return details ? detailsOf(out, values) : detailsOf(null, values);
  }

  /**
   * {@link stepOnInputs} with details, reading the losses asynchronously: on every backend,
   * including those without a synchronous read (webgpu under Node).
   */
  async stepOnInputsAsync(inputs: SitStepInputs, hyper: StepHyper): Promise<SitStepDetails> {
    await this.prepareLossScaler();
    const out = this.stepTensors(inputs, hyper, true);
    await this.lossScaler?.sync();
    if (out.scaled) await this.applyScaledGradients(out.scaled, hyper);
    try {
      return detailsOf(out, (await out.losses.data()) as Float32Array) as SitStepDetails;
    } finally {
      out.losses.dispose();
    }
  }

  /** The step's tfjs work: losses `[loss, contrastive, reconstruction]` (and details) as tensors. */
  private stepTensors(
    inputs: SitStepInputs,
    hyper: StepHyper,
    details: boolean,
    teacherProjection?: tf.Tensor2D,
  ): {
    losses: tf.Tensor;
    s?: tf.Tensor;
    t?: tf.Tensor;
    rec?: tf.Tensor;
    grads?: Record<string, tf.Tensor>;
    /** Mixed precision: the unscaled gradients, applied by the caller once their check is read. */
    scaled?: ScaledGradients;
  } {
    const { temperature, lambda } = this.config;
    return tf.tidy(() => {
      const clean = stackedViews(inputs.clean);
      const corrupted = stackedViews(inputs.corrupted);
      const mask = stackedViews(inputs.masks);
      // Teacher on the clean views, outside the tape (no gradient; its BatchNorm uses batch statistics).
      const p = this.precision;
      const t =
        teacherProjection ??
        (withPrecision(
          p,
          // Its reconstruction is not used: not computed (a GEMM chain and unpatchify per step).
          () => this.teacher.module.forward(clean, { reconstruction: false }).projection,
        ) as tf.Tensor2D);
      const scaler = this.lossScaler;
      const { grads, extras } = gradientsByName(this.student, () => {
        // (The backward follows the precision its forward kernels recorded.)
        const o = withPrecision(p, () =>
          this.student.forward(corrupted, { rng: this.rngs.dropPath }),
        );
        const s = o.projection as tf.Tensor2D;
        // Both views stacked as they ran (no cuts: on webgpu the loss binds each view's rows).
        const contrastiveLoss = sitContrastiveLossOfViews(s, t, { temperature });
        const reconstructionLoss = maskedReconstructionLoss(
          o.reconstruction as tf.Tensor4D,
          clean,
          mask,
          { type: this.config.reconstruction },
        );
        // The total to differentiate and the reported [total, Lc, Lr] (one kernel each way on webgpu).
        const { total, losses } = lossSum(contrastiveLoss, reconstructionLoss, lambda);
        // Under mixed precision the gradients are of the scaled loss; the unscaled one is reported.
        return {
          loss: scaler ? scaler.scaleLoss(total) : total,
          extras: {
            contrastiveLoss,
            reconstructionLoss,
            s,
            rec: o.reconstruction as tf.Tensor4D,
            losses,
          },
        };
      });
      // The portable scaler path unscales with tfjs ops; on the device the fused AdamW does.
      const scaled = scaler && !scaler.onDevice ? scaler.unscale(grads) : undefined;
      // Details on the device path: the gradients ÷ this step's scale, taken before the fused
      // step updates the scale in place (commands run in order).
      const deviceScale = details && scaler?.onDevice ? scaler.deviceArgs().scale : null;
      const unscaledCopies = deviceScale
        ? Object.fromEntries(Object.entries(grads).map(([k, g]) => [k, tf.div(g, deviceScale)]))
        : null;
      if (!scaled) this.applyGradients(grads, hyper);
      const { losses } = extras;
      // `extras` outlive the gradient scope through tf.keep: release those not returned.
      tf.dispose(
        details
          ? [extras.contrastiveLoss, extras.reconstructionLoss]
          : [extras.contrastiveLoss, extras.reconstructionLoss, extras.s, extras.rec],
      );
      if (!details) return { losses, scaled };
      // (The unscaled gradients are disposed once applied: details get copies.)
      const reported = scaled
        ? Object.fromEntries(Object.entries(scaled.grads).map(([k, g]) => [k, tf.clone(g)]))
        : (unscaledCopies ?? grads);
      return { losses, s: extras.s, t, rec: extras.rec, grads: reported, scaled };
    });
  }
}

/** Build SiT from a config (validated; SiT v3 defaults for everything not given). */
export function createSiT(config: SitConfigInput): SitRecipe {
  return new SitRecipe(parseConfig(sitSchema, config, "sit"));
}
