import * as tf from "@tensorflow/tfjs";
import { AdamW, Rng, type RngState } from "@sit/core";
import { GmmlMasker } from "@sit/gmml";
import { maskedReconstructionLoss, sitContrastiveLoss } from "@sit/losses";
import { EmaTeacher, cosineMomentum, type MomentumSchedule } from "@sit/momentum";
import type { Recipe, RecipeState, StepResult } from "@sit/train";
import { type SitConfig, type SitConfigInput, parseConfig, sitSchema } from "./config";
import {
  type OptimSchedules,
  RECIPES_VERSION,
  type TwoViewBatch,
  at,
  corruptViews,
  gradientsByName,
  optimSchedules,
  twoViews,
} from "./common";
import { buildSitNetwork, type SitNetwork } from "./sit-network";

/** The inputs of one SiT step once the random parts are drawn (clean views, corrupted views, masks `[B,H,W,1]`). */
export interface SitStepInputs {
  x1: tf.Tensor4D;
  x2: tf.Tensor4D;
  c1: tf.Tensor4D;
  c2: tf.Tensor4D;
  m1: tf.Tensor4D;
  m2: tf.Tensor4D;
}

/** Hyper-parameters of one step (normally read from the schedules). */
export interface SitStepHyper {
  lr: number;
  wd: number;
  momentum: number;
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

/**
 * SiT v3 (spec §1): GMML-corrupt both views; student on the corrupted views → projection `s` and
 * reconstruction `x̂`; EMA teacher on the clean views → projection `t`;
 * `L = Lc(s, t) + λ·Lr(x̂, x, mask)` with `Lc = CL(s₁, t₂) + CL(s₂, t₁)` (MoCo-v3 form, ×2τ) and
 * `Lr` the masked L1 pooled over both views; per-tensor clipping, AdamW with the lr/wd schedules,
 * then the EMA update with the momentum schedule.
 */
export class SitRecipe implements Recipe<TwoViewBatch> {
  readonly name = "sit";
  readonly config: SitConfig;
  readonly student: SitNetwork;
  readonly teacher: EmaTeacher<SitNetwork>;
  readonly optimizer: AdamW;
  readonly masker: GmmlMasker;
  readonly schedules: OptimSchedules & { momentum: MomentumSchedule };
  private maskRng: Rng;
  private dropPathRng: Rng;

  constructor(config: SitConfig) {
    this.config = config;
    const rng = Rng.seed(config.seed);
    const heads = { projection: config.projection, reconstruction: true };
    this.student = buildSitNetwork(config.backbone, heads, rng.split());
    // The teacher is built without drop path; EmaTeacher copies the student's weights into it.
    this.teacher = new EmaTeacher(this.student, () =>
      buildSitNetwork(config.backbone, heads, rng.split(), { dropPathRate: 0 }),
    );
    this.maskRng = rng.split();
    this.dropPathRng = rng.split();
    this.masker = new GmmlMasker({ ...config.gmml, patchSize: this.student.backbone.patchSize });
    const s = optimSchedules(config.optim);
    this.schedules = {
      ...s,
      momentum: cosineMomentum({ ...config.momentum, totalSteps: s.totalSteps }),
    };
    this.optimizer = new AdamW(this.student, {
      lr: s.lr[0],
      weightDecay: config.optim.weightDecay,
      betas: config.optim.betas,
      clipPerTensor: config.optim.clipGrad > 0 ? config.optim.clipGrad : null,
    });
  }

  get totalSteps(): number {
    return this.schedules.totalSteps;
  }

  /** The student's heads. */
  get heads() {
    return { projection: this.student.clsHead, reconstruction: this.student.recHead };
  }

  /** One SiT step on a two-view batch: draws the GMML corruption, then {@link SitRecipe.stepOnInputs}. */
  trainStep(batch: TwoViewBatch, step: number): StepResult {
    const [x1, x2] = twoViews(batch);
    const hyper = {
      lr: at(this.schedules.lr, step),
      wd: at(this.schedules.wd, step),
      momentum: this.schedules.momentum(step),
    };
    const { corrupted, masks } = corruptViews(this.masker, [x1, x2], this.maskRng);
    try {
      const d = this.stepOnInputs(
        { x1, x2, c1: corrupted[0], c2: corrupted[1], m1: masks[0], m2: masks[1] },
        hyper,
        false,
      );
      return {
        loss: d.loss,
        terms: { contrastive: d.contrastive, reconstruction: d.reconstruction },
        schedule: hyper,
      };
    } finally {
      tf.dispose([...corrupted, ...masks]);
    }
  }

  /**
   * One step from given inputs (no random draws besides drop path): forward, losses, gradients,
   * clipping + AdamW, EMA. With `details`, also returns the projections, the reconstruction and the
   * gradients before clipping (the caller disposes them).
   */
  stepOnInputs(inputs: SitStepInputs, hyper: SitStepHyper, details: true): SitStepDetails;
  stepOnInputs(
    inputs: SitStepInputs,
    hyper: SitStepHyper,
    details?: false,
  ): Pick<SitStepDetails, "loss" | "contrastive" | "reconstruction">;
  stepOnInputs(
    inputs: SitStepInputs,
    hyper: SitStepHyper,
    details = false,
  ): SitStepDetails | Pick<SitStepDetails, "loss" | "contrastive" | "reconstruction"> {
    const { temperature, lambda } = this.config;
    const B = inputs.x1.shape[0];
    const dropRng = this.dropPathRng;
    const out = tf.tidy(() => {
      const clean = tf.concat([inputs.x1, inputs.x2], 0) as tf.Tensor4D;
      const corrupted = tf.concat([inputs.c1, inputs.c2], 0) as tf.Tensor4D;
      const mask = tf.concat([inputs.m1, inputs.m2], 0);
      // Teacher on the clean views, outside the tape (no gradient; its BatchNorm uses batch statistics).
      const t = this.teacher.module.forward(clean).projection as tf.Tensor2D;
      const { loss, grads, extras } = gradientsByName(this.student, () => {
        const o = this.student.forward(corrupted, { rng: dropRng });
        const s = o.projection as tf.Tensor2D;
        const lc = sitContrastiveLoss(
          s.slice([0, 0], [B, -1]),
          s.slice([B, 0], [B, -1]),
          t.slice([0, 0], [B, -1]),
          t.slice([B, 0], [B, -1]),
          { temperature },
        );
        const lr = maskedReconstructionLoss(o.reconstruction as tf.Tensor4D, clean, mask, {
          type: this.config.reconstruction,
        });
        return {
          loss: tf.add(lc, tf.mul(lr, lambda)) as tf.Scalar,
          extras: { lc, lr, s, rec: o.reconstruction as tf.Tensor4D },
        };
      });
      this.optimizer.setLr(hyper.lr).setWeightDecay(hyper.wd);
      this.optimizer.step(grads);
      this.teacher.update(this.student, hyper.momentum);
      const losses = tf.stack([loss, extras.lc, extras.lr]);
      if (!details) return { losses };
      return { losses, s: extras.s, t, rec: extras.rec, grads };
    });
    // Read numbers after the tidy: a typed-array read inside tidy is much slower in tfjs.
    const [loss, contrastive, reconstruction] = out.losses.dataSync() as Float32Array;
    out.losses.dispose();
    if (!details) return { loss, contrastive, reconstruction };
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

  /** Full state: student, teacher (incl. BatchNorm statistics), optimiser moments, step, Rng, config. */
  saveState(): RecipeState {
    const tensors: Record<string, tf.Tensor> = {};
    for (const [k, v] of Object.entries(this.student.stateDict())) tensors[`student.${k}`] = v;
    for (const [k, v] of Object.entries(this.teacher.module.stateDict()))
      tensors[`teacher.${k}`] = v;
    const opt = this.optimizer.state();
    for (const [k, v] of Object.entries(opt.tensors)) tensors[`optim.${k}`] = v;
    return {
      tensors,
      meta: {
        recipe: this.name,
        config: this.config,
        optimizer: { step: opt.step, groups: opt.groups },
        maskRng: this.maskRng.state(),
        dropPathRng: this.dropPathRng.state(),
        versions: { "@sit/recipes": RECIPES_VERSION, tfjs: tf.version.tfjs },
      },
    };
  }

  loadState(state: RecipeState): void {
    const pick = (prefix: string) => {
      const out: Record<string, tf.Tensor> = {};
      for (const [k, v] of Object.entries(state.tensors))
        if (k.startsWith(prefix)) out[k.slice(prefix.length)] = v;
      return out;
    };
    this.student.loadStateDict(pick("student."));
    this.teacher.module.loadStateDict(pick("teacher."));
    const opt = state.meta.optimizer as {
      step: number;
      groups: { name: string; lr: number; weightDecay: number; params: string[] }[];
    };
    this.optimizer.loadState({ step: opt.step, groups: opt.groups, tensors: pick("optim.") });
    this.maskRng = Rng.fromState(state.meta.maskRng as RngState);
    this.dropPathRng = Rng.fromState(state.meta.dropPathRng as RngState);
  }

  dispose(): void {
    this.student.dispose();
    this.teacher.dispose();
    this.optimizer.dispose();
  }
}

/** Build SiT from a config (validated; SiT v3 defaults for everything not given). */
export function createSiT(config: SitConfigInput): SitRecipe {
  return new SitRecipe(parseConfig(sitSchema, config, "sit"));
}
