import { ConfigError, describeValue } from "@sit/core";
import * as tf from "@tensorflow/tfjs";
import { checkStepResult } from "./guards";
import { countImages } from "./loader";
import type { LaunchedStep, Recipe, StepResult } from "./recipe";

/** A step whose loss has been read: what {@link fit} reports, checks and counts. */
export interface RanStep {
  /** Global 0-based index of the step. */
  step: number;
  result: StepResult;
  images: number;
  /** Milliseconds spent waiting for the batch. */
  dataMs: number;
  /** Milliseconds of the step: running it (launching it, on the late path) plus waiting for its loss. */
  stepMs: number;
  /** Milliseconds the host waited for the loss once it needed it (late path only). */
  readWaitMs?: number;
}

/** The step's {@link StepResult} from the values of its {@link LaunchedStep}. */
function resultOf(launched: LaunchedStep, values: ArrayLike<number>): StepResult {
  const terms: Record<string, number> = {};
  (launched.terms ?? []).forEach((name, i) => {
    terms[name] = values[i + 1];
  });
  return { loss: values[0], terms, ...(launched.schedule ? { schedule: launched.schedule } : {}) };
}

/** Throw a ConfigError unless `launched` is a {@link LaunchedStep}. */
export function checkLaunchedStep(launched: unknown, step: number): LaunchedStep {
  const l = launched as LaunchedStep | null;
  const terms = l?.terms ?? [];
  const ok =
    l !== null &&
    typeof l === "object" &&
    l.values instanceof tf.Tensor &&
    l.values.dtype === "float32" &&
    l.values.rank === 1 &&
    Array.isArray(terms) &&
    terms.every((t) => typeof t === "string") &&
    l.values.size === 1 + terms.length;
  if (!ok)
    throw new ConfigError(
      `recipe.launchStep (step ${step}): expected { values: a 1-D float32 tensor of [loss, ...terms], terms?: string[] naming them, schedule? }, got ${
        l?.values instanceof tf.Tensor
          ? `values of dtype ${l.values.dtype} and shape [${l.values.shape}] with terms ${describeValue(l.terms)}`
          : describeValue(launched)
      }`,
    );
  return l;
}

/**
 * Read a {@link LaunchedStep}'s values (asynchronously: the one read WebGPU offers under Node) and
 * dispose them: the {@link StepResult} that `trainStep` would have returned.
 */
/** The read of a launched step's values, settled only once its other reads are (`settled`). */
function readValues(launched: LaunchedStep): Promise<ArrayLike<number>> {
  const values = launched.values.data() as Promise<Float32Array>;
  if (!launched.settled) return values;
  return Promise.all([values, launched.settled]).then(([v]) => v);
}

export async function readLaunchedStep(launched: LaunchedStep): Promise<StepResult> {
  try {
    return resultOf(launched, await readValues(launched));
  } finally {
    launched.values.dispose();
  }
}

interface InFlight {
  step: number;
  launched: LaunchedStep;
  /** The read of `launched.values`, started when the step was launched. */
  read: Promise<ArrayLike<number>>;
  images: number;
  dataMs: number;
  launchMs: number;
}

/**
 * Runs {@link fit}'s steps, either synchronously (`trainStep`: each step's loss is read before the
 * next starts) or late (`launchStep`: step k's loss is read while step k + 1 is launched). On the
 * late path at most one step is in flight; its values are the only tensor it holds, disposed here
 * (not in a promise callback) so that tensor counts between steps are deterministic.
 */
export class StepRunner<Batch> {
  private pending: InFlight | undefined;

  constructor(
    private readonly recipe: Recipe<Batch>,
    /** Read losses one step late (needs `recipe.launchStep`). */
    readonly late: boolean,
    private readonly options: {
      disposeBatches: boolean;
      batchSize?: number | ((batch: Batch) => number);
    },
  ) {}

  /** Steps launched whose loss has not been read yet (0 or 1). */
  get inFlight(): number {
    return this.pending ? 1 : 0;
  }

  /** Tensors held by the step in flight (its values): not a leak. */
  get heldTensors(): number {
    return this.pending ? 1 : 0;
  }

  /**
   * Run step `step` on `batch` (disposed afterwards unless `disposeBatches` is false). Returns the
   * step whose loss is now read: this one on the synchronous path, the previous one (or none) on
   * the late path.
   */
  async run(batch: Batch, step: number, dataMs: number): Promise<RanStep | undefined> {
    const t0 = performance.now();
    let images: number;
    if (!this.late) {
      let result: StepResult;
      try {
        images = countImages(batch, this.options.batchSize);
        result = checkStepResult(await this.recipe.trainStep(batch, step), step);
      } finally {
        this.disposeBatch(batch);
      }
      return { step, result, images, dataMs, stepMs: performance.now() - t0 };
    }
    let launched: LaunchedStep;
    try {
      images = countImages(batch, this.options.batchSize);
      const raw = await this.recipe.launchStep!(batch, step);
      try {
        launched = checkLaunchedStep(raw, step);
      } catch (err) {
        tf.dispose((raw as Partial<LaunchedStep> | null)?.values);
        throw err;
      }
    } finally {
      this.disposeBatch(batch);
    }
    // Starting the read submits the step's commands and queues the copy of its losses; it is
    // awaited only after the next step is launched. The no-op handler keeps a failed read from
    // being reported as unhandled before then.
    const read = readValues(launched);
    read.catch(() => {});
    const previous = this.pending;
    this.pending = { step, launched, read, images, dataMs, launchMs: performance.now() - t0 };
    return previous ? this.complete(previous) : undefined;
  }

  /** Read the step in flight, if any. */
  async drain(): Promise<RanStep | undefined> {
    const p = this.pending;
    this.pending = undefined;
    return p ? this.complete(p) : undefined;
  }

  /** After a failure: let the read of the step in flight settle and dispose its values. */
  async discard(): Promise<void> {
    const p = this.pending;
    this.pending = undefined;
    if (!p) return;
    await p.read.catch(() => {});
    p.launched.values.dispose();
  }

  private async complete(p: InFlight): Promise<RanStep> {
    const t0 = performance.now();
    let values: ArrayLike<number>;
    try {
      values = await p.read;
    } finally {
      p.launched.values.dispose();
    }
    const readWaitMs = performance.now() - t0;
    return {
      step: p.step,
      result: resultOf(p.launched, values),
      images: p.images,
      dataMs: p.dataMs,
      stepMs: p.launchMs + readWaitMs,
      readWaitMs,
    };
  }

  private disposeBatch(batch: Batch): void {
    if (this.options.disposeBatches) tf.dispose(batch as tf.TensorContainer);
  }
}
