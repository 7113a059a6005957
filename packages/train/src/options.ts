import { ConfigError, checkNumber, describeValue } from "@sit/core";
import type { CheckpointIO } from "./checkpoint-io";
import type { MetricSink, StepEvent, StopReason } from "./events";
import type { LeakCheckOptions } from "./guards";
import type { MaybePromise, Recipe } from "./recipe";

/** When and where {@link fit} writes checkpoints. */
export interface CheckpointSchedule {
  /** Directory of the checkpoint files and the `latest` pointer. */
  dir: string;
  /** Write one every this many steps. */
  everySteps?: number;
  /** Write one at the end of every this many epochs. */
  everyEpochs?: number;
  /**
   * Keep the newest this many and delete older ones once the new one is durable (default 3; 0
   * keeps all). At least 2 are kept: when the newest holds diverged weights, the one before it is
   * where training resumes.
   */
  keepLast?: number;
  /** Write one when training completes (default true). */
  atEnd?: boolean;
  /** Write one when stopped by a signal, the abort signal or the time budget (default true). */
  onInterrupt?: boolean;
  /** How files are written and read (default: @sit/core's checkpoint format). */
  io?: CheckpointIO;
}

/** What the online monitor receives. */
export interface MonitorContext<Batch> {
  /** Steps completed. */
  step: number;
  /** Epoch of the last step. */
  epoch: number;
  recipe: Recipe<Batch>;
}

/** An evaluation run periodically during training (e.g. k-NN accuracy on a held-out split). */
export interface MonitorOptions<Batch> {
  /** Computes named metrics; its result is emitted as a `monitor` event. */
  fn: (context: MonitorContext<Batch>) => MaybePromise<Record<string, number>>;
  /** Run at the end of every this many epochs. */
  everyEpochs?: number;
  /** Run every this many steps. */
  everySteps?: number;
  /** Run once more when training completes (default true). */
  atEnd?: boolean;
}

/** Options of {@link fit}. Give `epochs`, `maxSteps`, or both (training stops at whichever comes first). */
export interface FitOptions<Batch> {
  /** Number of epochs. */
  epochs?: number;
  /** Stop after this many steps in total (counting those before a resume). */
  maxSteps?: number;
  /** Batches per epoch: an epoch ends after this many even if the loader has more. Default: the loader's `length`, else learnt at the end of the first epoch. */
  stepsPerEpoch?: number;
  /** Images per batch (a number or a function); default: see {@link countImages}. */
  batchSize?: number | ((batch: Batch) => number);
  /** Resume: `true` = from `checkpoint.dir` if it holds a checkpoint; a string = from that file or directory. */
  resume?: boolean | string;
  /** Start at this global step without loading anything (the recipe's state is already restored). */
  startStep?: number;
  checkpoint?: CheckpointSchedule;
  /** Where events go; default: one {@link ConsoleProgressSink}. Pass `[]` for none. */
  sinks?: MetricSink[];
  /** Called after every step with its event (after the sinks). */
  onStep?: (event: StepEvent) => MaybePromise<void>;
  monitor?: MonitorOptions<Batch>;
  /** Stop with an error on a non-finite loss or term (default true). */
  nonFiniteLoss?: "error" | "off";
  /** Tensor-leak check; default warns. */
  leakCheck?: LeakCheckOptions;
  /** Catch these signals during fit, checkpoint and return (default SIGINT and SIGTERM; false: none). A second signal exits at once. */
  handleSignals?: boolean | NodeJS.Signals[];
  /** Aborting it stops training after the current step, like a signal. */
  signal?: AbortSignal;
  /**
   * Time budget in seconds of this run (a resumed run gets its own): once spent, training stops
   * after the current step with a checkpoint and reason "time-budget". Progress ETAs honour it.
   */
  maxSeconds?: number;
  /**
   * Read each step's loss one step late: launch step k + 1 (`recipe.launchStep`) before waiting
   * for step k's loss, so that the device never waits for the host. Every step is still reported,
   * in order and with its own step number; a step's `onStep`, its checkpoint and the monitor run
   * once its loss is read (a checkpoint or monitor due after a step waits for that read before the
   * next step is launched, so it never holds weights whose loss is unread). Default: on where the
   * backend reads asynchronously (webgpu; not cpu or wasm) and the recipe has `launchStep`.
   */
  readLossLate?: boolean;
  /** Dispose every tensor in a batch after its step (default true). */
  disposeBatches?: boolean;
  /** Receives warnings (leaks, skipped checkpoints); `console.warn` by default. */
  onWarning?: (message: string) => void;
}

/** What {@link fit} resolves with. A failure (non-finite loss, leak error, a throwing step) rejects instead. */
export interface FitResult {
  /** "completed"; "signal" / "aborted" when interrupted, "time-budget" when `maxSeconds` ran out (a checkpoint was written unless disabled). */
  reason: Exclude<StopReason, "error">;
  /** The signal that stopped training. */
  signal?: NodeJS.Signals;
  /** Steps completed in total (= the global index of the next step). */
  steps: number;
  /** Epoch of the next step. */
  epoch: number;
  /** Seconds of training, including runs this one resumed. */
  elapsedSec: number;
  /** Loss of the last step this run ran. */
  lastLoss?: number;
  /** The last checkpoint this run wrote. */
  checkpoint?: string;
  /** The checkpoint this run resumed from. */
  resumedFrom?: string;
}

const positiveInt = (name: string, v: unknown) =>
  v === undefined ? undefined : checkNumber(name, v, { min: 1, integer: true });

/** Validate {@link FitOptions}; throws a ConfigError naming the first bad field. */
export function checkFitOptions<Batch>(options: FitOptions<Batch>): void {
  if (options === null || typeof options !== "object")
    throw new ConfigError(`options: expected an object, got ${describeValue(options)}`);
  positiveInt("options.epochs", options.epochs);
  if (options.maxSteps !== undefined)
    checkNumber("options.maxSteps", options.maxSteps, { min: 0, integer: true });
  if (options.epochs === undefined && options.maxSteps === undefined)
    throw new ConfigError("options: expected epochs or maxSteps (or both), got neither");
  positiveInt("options.stepsPerEpoch", options.stepsPerEpoch);
  if (options.maxSeconds !== undefined)
    checkNumber("options.maxSeconds", options.maxSeconds, { min: 0, minExclusive: true });
  if (options.startStep !== undefined)
    checkNumber("options.startStep", options.startStep, { min: 0, integer: true });
  if (options.startStep !== undefined && options.resume)
    throw new ConfigError(
      `options.startStep: expected it only without options.resume, got startStep ${options.startStep} and resume ${describeValue(options.resume)}`,
    );
  if (typeof options.batchSize === "number")
    checkNumber("options.batchSize", options.batchSize, { min: 1, integer: true });
  else if (options.batchSize !== undefined && typeof options.batchSize !== "function")
    throw new ConfigError(
      `options.batchSize: expected a positive integer or a function batch => number, got ${describeValue(options.batchSize)}`,
    );
  if (
    options.resume !== undefined &&
    typeof options.resume !== "boolean" &&
    typeof options.resume !== "string"
  )
    throw new ConfigError(
      `options.resume: expected true, false or a path, got ${describeValue(options.resume)}`,
    );
  if (options.resume === true && !options.checkpoint)
    throw new ConfigError("options.resume: true needs options.checkpoint.dir to resume from");
  const c = options.checkpoint;
  if (c !== undefined) {
    if (!c || typeof c.dir !== "string" || c.dir.length === 0)
      throw new ConfigError(
        `options.checkpoint.dir: expected a directory path, got ${describeValue(c?.dir)}`,
      );
    positiveInt("options.checkpoint.everySteps", c.everySteps);
    positiveInt("options.checkpoint.everyEpochs", c.everyEpochs);
    if (c.keepLast !== undefined)
      checkNumber("options.checkpoint.keepLast", c.keepLast, { min: 0, integer: true });
  }
  const m = options.monitor;
  if (m !== undefined) {
    if (!m || typeof m.fn !== "function")
      throw new ConfigError(
        `options.monitor.fn: expected a function returning metrics, got ${describeValue(m?.fn)}`,
      );
    positiveInt("options.monitor.everySteps", m.everySteps);
    positiveInt("options.monitor.everyEpochs", m.everyEpochs);
  }
  if (options.sinks !== undefined) {
    if (!Array.isArray(options.sinks))
      throw new ConfigError(
        `options.sinks: expected an array of sinks, got ${describeValue(options.sinks)}`,
      );
    options.sinks.forEach((s, i) => {
      if (!s || typeof s.onEvent !== "function")
        throw new ConfigError(
          `options.sinks[${i}]: expected an object with an onEvent method, got ${describeValue(s)}`,
        );
    });
  }
  if (
    options.nonFiniteLoss !== undefined &&
    options.nonFiniteLoss !== "error" &&
    options.nonFiniteLoss !== "off"
  )
    throw new ConfigError(
      `options.nonFiniteLoss: expected "error" or "off", got ${describeValue(options.nonFiniteLoss)}`,
    );
  const hs = options.handleSignals;
  if (
    hs !== undefined &&
    typeof hs !== "boolean" &&
    !(Array.isArray(hs) && hs.every((x) => typeof x === "string" && x.startsWith("SIG")))
  )
    throw new ConfigError(
      `options.handleSignals: expected true, false or a list of signal names such as ["SIGINT"], got ${describeValue(hs)}`,
    );
  if (options.readLossLate !== undefined && typeof options.readLossLate !== "boolean")
    throw new ConfigError(
      `options.readLossLate: expected true or false, got ${describeValue(options.readLossLate)}`,
    );
  const a = options.leakCheck?.action;
  if (a !== undefined && a !== "warn" && a !== "error" && a !== "off")
    throw new ConfigError(
      `options.leakCheck.action: expected "warn", "error" or "off", got ${describeValue(a)}`,
    );
}

/** Throw a ConfigError unless `recipe` looks like a {@link Recipe}. */
export function checkRecipe(recipe: unknown): void {
  const r = recipe as Partial<Recipe> | null;
  if (!r || typeof r !== "object")
    throw new ConfigError(`recipe: expected a Recipe object, got ${describeValue(recipe)}`);
  for (const m of ["trainStep", "saveState", "loadState"] as const)
    if (typeof r[m] !== "function")
      throw new ConfigError(`recipe.${m}: expected a function, got ${describeValue(r[m])}`);
  if (r.launchStep !== undefined && typeof r.launchStep !== "function")
    throw new ConfigError(
      `recipe.launchStep: expected a function or undefined, got ${describeValue(r.launchStep)}`,
    );
  if (typeof r.name !== "string")
    throw new ConfigError(`recipe.name: expected a string, got ${describeValue(r.name)}`);
}
