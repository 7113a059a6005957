/** Fields that every event carries. */
export interface EventBase {
  /** Global 0-based index of the last step that ran (−1 before the first one). */
  step: number;
  /** 0-based epoch. */
  epoch: number;
  /** Seconds of training in this run, plus those of the run it resumed. */
  elapsedSec: number;
  /** `Date.now()` when the event was emitted. */
  wallTime: number;
}

/** Training starts (or resumes). */
export interface StartEvent extends EventBase {
  type: "start";
  recipe: string;
  /** The first step that will run (non-zero when resuming). */
  startStep: number;
  /** Planned number of steps, when known. */
  totalSteps?: number;
  /** Steps per epoch, when known. */
  stepsPerEpoch?: number;
  /** The checkpoint this run resumed from. */
  resumedFrom?: string;
}

/** One step finished. Emitted after every step. */
export interface StepEvent extends EventBase {
  type: "step";
  loss: number;
  terms: Record<string, number>;
  lr?: number;
  wd?: number;
  momentum?: number;
  /** Images in this step's batch. */
  images: number;
  /** Images per second over this step, data loading included. */
  imagesPerSec: number;
  /** Milliseconds inside `recipe.trainStep`. */
  stepMs: number;
  /** Milliseconds spent waiting for the batch. */
  dataMs: number;
  /** `tf.memory().numTensors` after the step (batch disposed). */
  tensors: number;
  /** Planned number of steps, when known (for progress and ETA). */
  totalSteps?: number;
  /** Steps per epoch, when known. */
  stepsPerEpoch?: number;
  /** `elapsedSec` at which the time budget (`FitOptions.maxSeconds`) stops training, when there is one. */
  budgetEndSec?: number;
}

/** An epoch's batches are exhausted. */
export interface EpochEvent extends EventBase {
  type: "epoch";
  /** Steps run in this epoch (by this run and, after a resume, the one before). */
  steps: number;
}

/** The online monitor ran. */
export interface MonitorEvent extends EventBase {
  type: "monitor";
  metrics: Record<string, number>;
  durationSec: number;
}

/** A checkpoint was written (durably) and `latest` points at it. */
export interface CheckpointEvent extends EventBase {
  type: "checkpoint";
  path: string;
  /** Why it was written. */
  reason: "interval" | "epoch" | "end" | "signal" | "abort" | "time-budget";
}

/** Something went wrong but training goes on (tensor leak, skipped corrupt checkpoint…). */
export interface WarningEvent extends EventBase {
  type: "warning";
  message: string;
}

/** Training ended, normally or not. */
export interface EndEvent extends EventBase {
  type: "end";
  reason: StopReason;
  /** Steps completed in total (the next step's index). */
  steps: number;
  /** The error message when `reason` is "error". */
  error?: string;
}

/**
 * Why {@link fit} stopped: it ran its planned steps ("completed"), a signal or the abort signal
 * stopped it, it spent its time budget (`FitOptions.maxSeconds`), or it failed.
 */
export type StopReason = "completed" | "signal" | "aborted" | "time-budget" | "error";

/** Every event that sinks receive. */
export type TrainEvent =
  | StartEvent
  | StepEvent
  | EpochEvent
  | MonitorEvent
  | CheckpointEvent
  | WarningEvent
  | EndEvent;

/**
 * A destination for training events (console, file, dashboard…). `fit` awaits each call in order,
 * and calls `close` once when training ends, whatever the reason.
 */
export interface MetricSink {
  onEvent(event: TrainEvent): void | Promise<void>;
  close?(): void | Promise<void>;
}
