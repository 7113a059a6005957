import { ConfigError, SitError, checkNumber, describeValue } from "@sit/core";
import type * as tf from "@tensorflow/tfjs";
import type { StepResult } from "./recipe";
import { formatNumber } from "./sinks/format";

/** Where the checkpoints stood when training stopped on a non-finite loss. */
export interface DivergedCheckpoints {
  /** The checkpoint directory. */
  dir: string;
  /** The newest checkpoint whose weights still gave a finite loss (`latest` names it), if any. */
  lastGood?: string;
  /** Where the checkpoint holding the diverged weights was moved, if one had been written. */
  setAside?: string;
}

/**
 * A step produced a NaN or infinite loss (or loss term); training stopped. The loss of step k is
 * computed with the weights of k updates, so a checkpoint taken after step k − 1 already holds the
 * diverged weights: {@link fit} sets it aside and names the last good one.
 */
export class NonFiniteLossError extends SitError {
  constructor(
    /** Global 0-based index of the step. */
    readonly step: number,
    readonly loss: number,
    readonly terms: Record<string, number>,
    /** Set when checkpoints were being written. */
    readonly checkpoints?: DivergedCheckpoints,
  ) {
    const parts = Object.entries(terms).map(([k, v]) => `${k} = ${formatNumber(v)}`);
    const bad = Object.entries(terms)
      .filter(([, v]) => !Number.isFinite(v))
      .map(([k]) => k);
    const ck = checkpoints;
    const where = !ck
      ? " Training stopped (no checkpoints were configured)."
      : (ck.setAside
          ? ` Training stopped; the checkpoint holding the weights that gave it was moved to ${ck.setAside}.`
          : " Training stopped without writing a checkpoint.") +
        (ck.lastGood
          ? ` The last good checkpoint is ${ck.lastGood} (\`latest\` names it).`
          : ` No checkpoint in ${ck.dir} predates the divergence.`);
    super(
      `non-finite loss at step ${step}: loss = ${formatNumber(loss)}` +
        (parts.length > 0 ? ` (terms: ${parts.join(", ")})` : "") +
        (bad.length > 0 ? `; non-finite term(s): ${bad.join(", ")}` : "") +
        `.${where} Lower the learning rate or check the inputs` +
        (ck?.lastGood ? ", then resume from the last good checkpoint." : ", and start again."),
    );
  }
}

/**
 * A checkpoint was due but the recipe's state holds a NaN or infinite value; it was not written,
 * so `latest` stays on the last good checkpoint.
 */
export class NonFiniteStateError extends SitError {
  constructor(
    /** Steps completed when the checkpoint was due. */
    readonly step: number,
    /** The first bad value, as "tensor[index] = NaN". */
    readonly value: string,
    /** The checkpoint `latest` names, if any. */
    readonly lastGood: string | undefined,
  ) {
    super(
      `non-finite state after step ${step - 1}: ${value}. The checkpoint was not written; ` +
        (lastGood ? `the last good one is ${lastGood}.` : "no earlier checkpoint exists.") +
        " Lower the learning rate or check the inputs.",
    );
  }
}

/** Tensors kept piling up across steps and `leakCheck.action` was "error". */
export class TensorLeakError extends SitError {}

/** Whether the loss and every term are finite. */
export function isFiniteLoss(loss: number, terms: Record<string, number>): boolean {
  return Number.isFinite(loss) && Object.values(terms).every((v) => Number.isFinite(v));
}

/**
 * The first non-finite value among the floating-point tensors of a state, as "name[index] = NaN",
 * or undefined when all are finite. Read with `await data()` (backends without `dataSync`).
 */
export async function firstNonFinite(
  tensors: Record<string, tf.Tensor>,
): Promise<string | undefined> {
  for (const name of Object.keys(tensors).sort()) {
    const t = tensors[name];
    if (t.dtype !== "float32") continue;
    const v = (await t.data()) as Float32Array;
    for (let i = 0; i < v.length; i++)
      if (!Number.isFinite(v[i])) return `${name}[${i}] = ${formatNumber(v[i])}`;
  }
  return undefined;
}

/** Options of the tensor-leak check. */
export interface LeakCheckOptions {
  /** What to do on a leak: warn once (default), throw a TensorLeakError, or not check. */
  action?: "warn" | "error" | "off";
  /** Steps to run before taking the baseline (lazily created state such as optimiser moments). Default 2. */
  warmupSteps?: number;
  /** Extra tensors above the baseline tolerated (a prefetching loader's queue). Default 0. */
  tolerance?: number;
  /** Consecutive steps above baseline + tolerance before it counts as a leak. Default 3. */
  patience?: number;
}

/**
 * Watches `tf.memory().numTensors` after every step. The count after `warmupSteps` steps is the
 * baseline; a count above baseline + tolerance for `patience` steps in a row is a leak.
 */
export class LeakDetector {
  private readonly warmup: number;
  private readonly tolerance: number;
  private readonly patience: number;
  private seen = 0;
  private baseline: number | undefined;
  private over = 0;
  private reported = false;

  constructor(options: LeakCheckOptions = {}) {
    this.warmup = checkNumber("leakCheck.warmupSteps", options.warmupSteps ?? 2, {
      min: 0,
      integer: true,
    });
    this.tolerance = checkNumber("leakCheck.tolerance", options.tolerance ?? 0, {
      min: 0,
      integer: true,
    });
    this.patience = checkNumber("leakCheck.patience", options.patience ?? 3, {
      min: 1,
      integer: true,
    });
  }

  /**
   * Record the count after one step; returns a description of the leak the first time one is
   * established, `undefined` otherwise.
   */
  observe(step: number, numTensors: number): string | undefined {
    this.seen++;
    if (this.seen <= this.warmup) return undefined;
    if (this.baseline === undefined) {
      this.baseline = numTensors;
      return undefined;
    }
    const growth = numTensors - this.baseline;
    this.over = growth > this.tolerance ? this.over + 1 : 0;
    if (this.over < this.patience || this.reported) return undefined;
    this.reported = true;
    const steps = this.seen - this.warmup - 1;
    return (
      `tensor leak: tf.memory().numTensors grew from ${this.baseline} to ${numTensors} ` +
      `over the ${steps} steps up to step ${step} (≈${formatNumber(growth / steps)} per step). ` +
      "Run the step inside tf.tidy, or dispose what it creates; a loader that keeps a queue of " +
      "tensors needs leakCheck.tolerance."
    );
  }
}

/** Throw a ConfigError unless `result` is a {@link StepResult} (numbers only, no tensors). */
export function checkStepResult(result: unknown, step: number): StepResult {
  const r = result as StepResult | null;
  const ok =
    r !== null &&
    typeof r === "object" &&
    typeof r.loss === "number" &&
    (r.terms === undefined ||
      (typeof r.terms === "object" && Object.values(r.terms).every((v) => typeof v === "number")));
  if (!ok)
    throw new ConfigError(
      `recipe.trainStep (step ${step}): expected { loss: number, terms?: Record<string, number>, schedule? }, got ${describeValue(result)}`,
    );
  return r as StepResult;
}

/** Throw a ConfigError unless the monitor returned `Record<string, number>`. */
export function checkMonitorMetrics(metrics: unknown): asserts metrics is Record<string, number> {
  if (
    metrics === null ||
    typeof metrics !== "object" ||
    !Object.values(metrics).every((v) => typeof v === "number")
  )
    throw new ConfigError(
      `options.monitor.fn: expected it to return Record<string, number>, got ${describeValue(metrics)}`,
    );
}
