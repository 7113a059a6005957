import * as tf from "@tensorflow/tfjs";
import { AdamW, ConfigError, type Module, Rng, type RngState, flatEmaKernel } from "@sit/core";
import {
  DynamicLossScaler,
  type LossScalerState,
  type Precision,
  type ScaledGradients,
  checkPrecision,
  settleBufferPool,
} from "@sit/kernels";
import {
  EmaTeacher,
  MOMENTUM_DEFAULTS,
  type MomentumSchedule,
  cosineMomentum,
} from "@sit/momentum";
import {
  type LaunchedStep,
  type MaybePromise,
  type Recipe,
  type RecipeState,
  type StepResult,
  readLaunchedStep,
} from "@sit/train";
import type { VisionTransformer } from "@sit/vit";
import { CapturedSteps } from "./captured-steps";
import type { OptimConfig } from "./config";
import { type OptimSchedules, at, optimSchedules } from "./schedules";

/** Library versions recorded in checkpoints. */
const RECIPES_VERSION = "0.1.0";

/** Which copy of a recipe's network: the trained student or the EMA teacher (recipes that have one). */
export type WeightsChoice = "student" | "teacher";

/** Learning rate, weight decay and (for recipes with a teacher) momentum of one step. */
export interface StepHyper {
  lr: number;
  wd: number;
  momentum: number;
}

/**
 * What every recipe of this package shares: a trained module (`student`) optimised by AdamW with
 * SiT's lr/wd schedules and per-tensor clipping, optionally an EMA teacher of a part of it with the
 * cosine momentum schedule, named random generators, and full-state save/load for @sit/train.
 * A concrete recipe adds its forward pass and loss in `launchStep`, and says where the ViT sits in
 * its networks (`backboneOf`). `M` is the student's type, `T` the teacher's (`never` without one).
 */
export abstract class ModuleRecipe<M extends Module, Batch, T extends Module = Module>
  implements Recipe<Batch>
{
  abstract readonly name: string;
  readonly optimizer: AdamW;
  readonly schedules: OptimSchedules & { momentum: MomentumSchedule };
  /** The EMA teacher and the student module it follows, when the recipe has one. */
  protected ema: { teacher: EmaTeacher<T>; follows: Module } | null = null;
  /** Named generators (masking, drop path…), saved and restored with the state. */
  protected readonly rngs: Record<string, Rng> = {};
  /** Precision of the forward and backward passes (`config.precision`, default f32). */
  readonly precision: Precision;
  /** Dynamic loss scaling under mixed precision (saved and restored with the state). */
  readonly lossScaler: DynamicLossScaler | null;
  /**
   * The recipe's captured steps on webgpu (captured-steps.ts), for the recipes that capture
   * theirs: its `status`, and `enabled = false` to run every step as usual.
   */
  readonly stepCapture = new CapturedSteps();

  protected constructor(
    readonly student: M,
    readonly config: {
      optim: OptimConfig;
      seed: number;
      momentum?: { base: number; final: number };
      precision?: Precision;
    },
  ) {
    // Checked against the active backend now: mixed-f16 needs webgpu with shader-f16.
    this.precision = checkPrecision("precision", config.precision ?? "f32");
    this.lossScaler = this.precision === "mixed-f16" ? new DynamicLossScaler() : null;
    const s = optimSchedules(config.optim);
    const m = config.momentum ?? MOMENTUM_DEFAULTS;
    this.schedules = { ...s, momentum: cosineMomentum({ ...m, totalSteps: s.totalSteps }) };
    this.optimizer = new AdamW(student, {
      lr: s.lr[0],
      weightDecay: config.optim.weightDecay,
      betas: config.optim.betas,
      clipPerTensor: config.optim.clipGrad > 0 ? config.optim.clipGrad : null,
    });
  }

  get totalSteps(): number {
    return this.schedules.totalSteps;
  }

  /** The teacher network, when the recipe has one. */
  get teacherModule(): T | null {
    return this.ema?.teacher.module ?? null;
  }

  /**
   * The trained network (`student`, the default) or its EMA teacher (`teacher`); a recipe without
   * a teacher throws a ConfigError for `teacher`.
   */
  network(weights?: "student"): M;
  network(weights: "teacher"): T;
  network(weights?: WeightsChoice): M | T;
  network(weights: WeightsChoice = "student"): M | T {
    if (weights === "student") return this.student;
    if (weights !== "teacher")
      throw new ConfigError(
        `weights: expected "student" or "teacher", got ${JSON.stringify(weights)}`,
      );
    if (!this.ema)
      throw new ConfigError(
        `weights: recipe "${this.name}" has no teacher (it trains one network); use "student"`,
      );
    return this.ema.teacher.module;
  }

  /** The ViT backbone inside {@link ModuleRecipe.network}: what evaluations and exports use. */
  backbone(weights: WeightsChoice = "student"): VisionTransformer {
    return this.backboneOf(this.network(weights));
  }

  /** Where the ViT sits in this recipe's student or teacher network. */
  protected abstract backboneOf(network: M | T): VisionTransformer;

  /** Attach an EMA teacher of `follows` (the student or a part of it), built by `factory` without drop path. */
  protected attachTeacher(follows: Module, factory: () => T): EmaTeacher<T> {
    const teacher = new EmaTeacher(follows, factory);
    this.ema = { teacher, follows };
    return teacher;
  }

  /**
   * The start of a training step (each recipe's `launchStep` begins with it): its scheduled
   * hyper-parameters. On webgpu it also puts tfjs's buffer pool in a fixed order, so that every
   * step takes the same buffers and its kernels' bind groups are reused (@sit/kernels'
   * settleBufferPool: ≈ 170 fewer bind groups made per SiT step on lavapipe).
   */
  protected beginStep(step: number): StepHyper {
    settleBufferPool();
    return this.hyperAt(step);
  }

  /** The scheduled hyper-parameters of `step`. */
  hyperAt(step: number): StepHyper {
    return {
      lr: at(this.schedules.lr, step),
      wd: at(this.schedules.wd, step),
      momentum: this.schedules.momentum(step),
    };
  }

  /**
   * Clip + AdamW with `hyper`'s lr and wd, then the EMA update (if any) with its momentum. With the
   * loss scaler on the device ({@link ModuleRecipe.prepareLossScaler}), `grads` are of the scaled
   * loss and the fused kernels unscale, skip and update the scale there.
   */
  protected applyGradients(grads: Record<string, tf.Tensor>, hyper: StepHyper): void {
    this.optimizer.setLr(hyper.lr).setWeightDecay(hyper.wd);
    const scaler = this.lossScaler?.onDevice ? this.lossScaler : null;
    if (scaler) scaler.stepOnDevice(this.optimizer, grads);
    else this.optimizer.step(grads);
    if (this.ema)
      this.ema.teacher.update(
        this.ema.follows,
        hyper.momentum,
        scaler ? { skip: scaler.skipFlag() } : {},
      );
  }

  /**
   * Before a mixed-precision step: keep the loss scaler on the device when the backend's fused
   * AdamW (and EMA, with a teacher) can unscale and skip there — no per-tensor scaler ops, no
   * read inside the step — else on the host (the portable path: unscale with tfjs ops, then
   * {@link ModuleRecipe.applyScaledGradients}). Switching back waits for the device's state.
   */
  protected async prepareLossScaler(): Promise<void> {
    const scaler = this.lossScaler;
    if (!scaler) return;
    const device =
      this.optimizer.fusesLossScale() &&
      (!this.ema || flatEmaKernel(tf.getBackend())?.skipFlag === true);
    if (device) scaler.useDevice();
    else await scaler.useHost();
  }

  /**
   * Under mixed precision, after the gradients of the scaled loss were unscaled
   * ({@link DynamicLossScaler.unscale}): read whether they are finite (one scalar, as PyTorch's
   * `scaler.step` reads `found_inf`), apply them (clip + AdamW + EMA) only if so, and update the
   * scale. Disposes `scaled`.
   */
  protected async applyScaledGradients(scaled: ScaledGradients, hyper: StepHyper): Promise<void> {
    if (!this.lossScaler) throw new Error("applyScaledGradients: the recipe has no loss scaler");
    await this.lossScaler.finish(scaled, (grads) => this.applyGradients(grads, hyper));
  }

  /** A launched step: `values` = `[loss, ...terms]` still on the device, the schedule values used. */
  protected launched(values: tf.Tensor, terms: string[], hyper: StepHyper): LaunchedStep {
    const schedule = this.ema ? hyper : { lr: hyper.lr, wd: hyper.wd };
    // A loss scaler on the device: the step counts as read once its state copy is (so that a
    // checkpoint after it has the scale and the optimiser's step count of every step before).
    const scaler = this.lossScaler?.onDevice ? this.lossScaler : null;
    return { values, terms, schedule, ...(scaler ? { settled: scaler.sync() } : {}) };
  }

  /**
   * The step's tfjs work, its loss left on the device ({@link LaunchedStep}): nothing in it reads
   * back, so `fit` can launch the next step before reading this one's loss (webgpu). The built-in
   * recipes implement it (their `trainStep` reads it); a recipe with only `trainStep` runs with
   * each step's loss read before the next starts.
   */
  launchStep?(batch: Batch, step: number): MaybePromise<LaunchedStep>;

  /**
   * One optimisation step. Built-in recipes return a promise (their losses are read back with
   * {@link readLaunchedStep} from their `launchStep`, which works on every backend); a synchronous
   * result is fine on backends that read synchronously (cpu, wasm, tensorflow).
   */
  abstract trainStep(batch: Batch, step: number): MaybePromise<StepResult>;

  /**
   * The {@link StepResult} of a tensor of `[loss, ...terms]`, read asynchronously (works on every
   * backend); disposes `values`. For recipes that override `trainStep`.
   */
  protected readResult(values: tf.Tensor, names: string[], hyper: StepHyper): Promise<StepResult> {
    return readLaunchedStep(this.launched(values, names, hyper));
  }

  /** Full state: student (+ buffers), teacher, optimiser moments and step, generators, config, versions. */
  saveState(): RecipeState {
    const tensors: Record<string, tf.Tensor> = {};
    for (const [k, v] of Object.entries(this.student.stateDict())) tensors[`student.${k}`] = v;
    if (this.ema)
      for (const [k, v] of Object.entries(this.ema.teacher.module.stateDict()))
        tensors[`teacher.${k}`] = v;
    const opt = this.optimizer.state();
    for (const [k, v] of Object.entries(opt.tensors)) tensors[`optim.${k}`] = v;
    const rngs: Record<string, RngState> = {};
    for (const [k, r] of Object.entries(this.rngs)) rngs[k] = r.state();
    return {
      tensors,
      meta: {
        recipe: this.name,
        config: this.config,
        optimizer: { step: opt.step, groups: opt.groups },
        rngs,
        ...(this.lossScaler ? { lossScaler: this.lossScaler.state() } : {}),
        versions: { "@sit/recipes": RECIPES_VERSION, "@tensorflow/tfjs": tf.version.tfjs },
      },
    };
  }

  loadState(state: RecipeState): void {
    this.stepCapture.reset();
    const pick = (prefix: string) => {
      const out: Record<string, tf.Tensor> = {};
      for (const [k, v] of Object.entries(state.tensors))
        if (k.startsWith(prefix)) out[k.slice(prefix.length)] = v;
      return out;
    };
    this.student.loadStateDict(pick("student."));
    if (this.ema) this.ema.teacher.module.loadStateDict(pick("teacher."));
    const opt = state.meta.optimizer as {
      step: number;
      groups: { name: string; lr: number; weightDecay: number; params: string[] }[];
    };
    this.optimizer.loadState({ step: opt.step, groups: opt.groups, tensors: pick("optim.") });
    const rngs = (state.meta.rngs ?? {}) as Record<string, RngState>;
    for (const k of Object.keys(this.rngs)) if (rngs[k]) this.rngs[k] = Rng.fromState(rngs[k]);
    // A checkpoint of an f32 run resumed in mixed precision starts from the initial scale.
    const scaler = state.meta.lossScaler as LossScalerState | undefined;
    if (this.lossScaler && scaler) this.lossScaler.loadState(scaler);
  }

  dispose(): void {
    this.stepCapture.reset();
    this.student.dispose();
    this.ema?.teacher.dispose();
    this.optimizer.dispose();
  }
}
