import { ConfigError, SitError, checkNumber, describeValue } from "@sit/core";
import type { StepResult } from "./recipe";
import { formatNumber } from "./sinks/format";

/** A step produced a NaN or infinite loss (or loss term); training stopped before saving anything. */
export class NonFiniteLossError extends SitError {
  constructor(
    /** Global 0-based index of the step. */
    readonly step: number,
    readonly loss: number,
    readonly terms: Record<string, number>,
  ) {
    const parts = Object.entries(terms).map(([k, v]) => `${k} = ${formatNumber(v)}`);
    const bad = Object.entries(terms)
      .filter(([, v]) => !Number.isFinite(v))
      .map(([k]) => k);
    super(
      `non-finite loss at step ${step}: loss = ${formatNumber(loss)}` +
        (parts.length > 0 ? ` (terms: ${parts.join(", ")})` : "") +
        (bad.length > 0 ? `; non-finite term(s): ${bad.join(", ")}` : "") +
        ". Training stopped without writing a checkpoint; the last good one is intact. " +
        "Lower the learning rate, check the inputs, or resume from the last checkpoint.",
    );
  }
}

/** Tensors kept piling up across steps and `leakCheck.action` was "error". */
export class TensorLeakError extends SitError {}

/** Throw a {@link NonFiniteLossError} unless the loss and every term are finite. */
export function checkFiniteLoss(step: number, loss: number, terms: Record<string, number>): void {
  if (Number.isFinite(loss) && Object.values(terms).every((v) => Number.isFinite(v))) return;
  throw new NonFiniteLossError(step, loss, terms);
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
