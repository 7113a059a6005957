import type * as tf from "@tensorflow/tfjs";

/** A value or a promise of it. */
export type MaybePromise<T> = T | Promise<T>;

/**
 * Everything a recipe needs to resume exactly: tensors by name (student, teacher, heads, optimiser
 * moments, BatchNorm statistics…) and JSON-serialisable state (step counters, `Rng` states, config,
 * versions).
 */
export interface RecipeState {
  /** Tensors by name. Names are free-form; a dotted, timm-like naming keeps files readable. */
  tensors: Record<string, tf.Tensor>;
  /** JSON-serialisable values (no tensors, no functions, no `undefined` that must survive). */
  meta: Record<string, unknown>;
}

/** Scheduled hyper-parameter values that a step used; reported to the sinks. */
export interface ScheduleValues {
  /** Learning rate. */
  lr?: number;
  /** Weight decay. */
  wd?: number;
  /** EMA momentum of a teacher. */
  momentum?: number;
}

/** What one training step reports: plain numbers only, never live tensors. */
export interface StepResult {
  /** The total loss that was minimised. */
  loss: number;
  /** Its parts by name (e.g. `{ contrastive: 0.9, reconstruction: 0.12 }`). */
  terms?: Record<string, number>;
  /** The schedule values the step used. */
  schedule?: ScheduleValues;
  /**
   * Other reads the step started that must finish before its result counts as read (e.g. a loss
   * scaler's late read of its state on the device): the step's values are awaited together with
   * it, so nothing is saved before it settles. A rejection fails the step.
   */
  settled?: Promise<unknown>;
}

/**
 * A step whose tfjs work has been issued but whose loss is still on the device: what
 * {@link Recipe.launchStep} returns. {@link fit} starts reading `values` at once and finishes the
 * read while the next step is being launched, so a GPU never waits for the host.
 */
export interface LaunchedStep {
  /**
   * `[loss, ...terms]` as one 1-D float32 tensor of `1 + terms.length` values. Ownership passes to
   * the caller, which reads it asynchronously and then disposes it.
   */
  values: tf.Tensor;
  /** Names of the terms that follow the loss in `values`, in order. */
  terms?: string[];
  /** The schedule values the step used. */
  schedule?: ScheduleValues;
  /**
   * Other reads the step started that must finish before its result counts as read (e.g. a loss
   * scaler's late read of its state on the device): the step's values are awaited together with
   * it, so nothing is saved before it settles. A rejection fails the step.
   */
  settled?: Promise<unknown>;
}

/**
 * The contract between {@link fit} and a training method. A recipe owns its models, optimiser and
 * random generators; `fit` owns the loop, the data order, checkpoints, metrics and guards.
 *
 * @typeParam Batch - what the loader yields and `trainStep` consumes.
 */
export interface Recipe<Batch = unknown> {
  /** A short name, recorded in checkpoints and logs. */
  readonly name: string;
  /**
   * Run one optimisation step on `batch`. `step` is the global, 0-based index of this step
   * (schedules are indexed by it). Do the tfjs work synchronously inside `tf.tidy` (or dispose
   * explicitly) so that no tensor outlives the step; return numbers only.
   * `fit` disposes the batch's tensors after the step unless `disposeBatches: false`.
   * May return a promise: reading the losses back with `await tensor.data()` is the only way on
   * backends without synchronous reads (WebGPU under Node has no `dataSync`).
   */
  trainStep(batch: Batch, step: number): MaybePromise<StepResult>;
  /**
   * Optional: the same step as {@link Recipe.trainStep} without reading its loss back — the losses
   * stay a tensor ({@link LaunchedStep}) and nothing in the step reads from the device. Where a
   * recipe has it, {@link fit} on a backend with asynchronous reads (webgpu) reads step k's loss
   * while step k + 1 is launched (`FitOptions.readLossLate`).
   */
  launchStep?(batch: Batch, step: number): MaybePromise<LaunchedStep>;
  /**
   * Everything needed to resume. Ownership of the returned tensors: `tf.Variable`s (parameters,
   * buffers, as `Module.stateDict()` returns them) are the recipe's live state and are never
   * disposed; every other tensor (e.g. `AdamW.state().tensors`, fresh copies) is handed over and
   * `fit` disposes it once the checkpoint is written. Wrap a plain tensor you keep in `tf.clone`.
   */
  saveState(): MaybePromise<RecipeState>;
  /**
   * Restore what {@link Recipe.saveState} returned. The tensors are owned by the caller and
   * disposed once this returns: copy their values (`variable.assign(t)`, `tf.clone`).
   */
  loadState(state: RecipeState): MaybePromise<void>;
  /** The planned number of steps, when the recipe knows it (its schedules do); used for the ETA. */
  readonly totalSteps?: number;
}
