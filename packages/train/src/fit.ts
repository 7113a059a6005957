import { ConfigError } from "@sit/core";
import * as tf from "@tensorflow/tfjs";
import type { LoadedCheckpoint, TrainProgress } from "./checkpoint-format";
import type { CheckpointEvent, EventBase, MetricSink, StepEvent, TrainEvent } from "./events";
import {
  type DivergedCheckpoints,
  LeakDetector,
  NonFiniteLossError,
  NonFiniteStateError,
  TensorLeakError,
  checkMonitorMetrics,
  checkStepResult,
  firstNonFinite,
  isFiniteLoss,
} from "./guards";
import {
  type BatchSource,
  type EpochIterator,
  checkBatchSource,
  countImages,
  openEpoch,
  statedLength,
} from "./loader";
import { type FitOptions, type FitResult, checkFitOptions, checkRecipe } from "./options";
import type { FitHost } from "./fit-host";
import type { Recipe, StepResult } from "./recipe";
import { ConsoleProgressSink } from "./sinks/console";
import { libraryVersions } from "./versions";

// setImmediate under Node (signal handlers run before the next step); a page has only setTimeout.
const yieldToEventLoop = () =>
  new Promise<void>((resolve) =>
    ((globalThis as { setImmediate?: (f: () => void) => void }).setImmediate ?? setTimeout)(
      resolve,
    ),
  );

const PAGE_HOST: FitHost = {};

/**
 * Train `recipe` on the batches of `loader` — in a web page (or a Worker): runs `recipe.trainStep(batch, step)` for every batch,
 * emits a metric event after every step to the sinks, writes full-state checkpoints, runs the
 * online monitor, and guards against non-finite losses, tensor leaks and interrupts.
 *
 * Resuming (`resume`) restores the recipe from a checkpoint and continues at the same step, epoch
 * and position in the epoch (the batches of the epoch already consumed are drawn and skipped), so
 * with a deterministic loader and recipe the run continues exactly as an uninterrupted one.
 *
 * `options.signal` stops after the current step; `fit` then resolves with reason "aborted". A time
 * budget (`options.maxSeconds`) stops the same way, with reason "time-budget".
 *
 * Checkpoints in a folder (`options.checkpoint`, `options.resume`) and SIGINT / SIGTERM are Node's:
 * use `fit` from `@sit/train/node`, the same loop with them. In a page, save `recipe.saveState()`
 * as bytes with `serializeTrainCheckpoint` (the file format `fit` writes under Node).
 */
export async function fit<Batch>(
  recipe: Recipe<Batch>,
  loader: BatchSource<Batch>,
  options: FitOptions<Batch>,
): Promise<FitResult> {
  return fitOn(PAGE_HOST, recipe, loader, options);
}

/**
 * {@link fit} on a given runtime.
 * @internal
 */
export async function fitOn<Batch>(
  host: FitHost,
  recipe: Recipe<Batch>,
  loader: BatchSource<Batch>,
  options: FitOptions<Batch>,
): Promise<FitResult> {
  checkRecipe(recipe);
  checkBatchSource(loader);
  checkFitOptions(options);
  if (!host.folder && (options.checkpoint || options.resume))
    throw new ConfigError(
      `options.${options.checkpoint ? "checkpoint" : "resume"}: checkpoints in a folder need Node; use fit from @sit/train/node (in a page, serializeTrainCheckpoint(…, recipe.saveState()) gives the same file's bytes)`,
    );
  return new FitRun(host, recipe, loader, options).run();
}

class FitRun<Batch> {
  private readonly sinks: MetricSink[];
  private readonly warn: (message: string) => void;
  private readonly leaks: LeakDetector | undefined;
  private readonly leakAction: "warn" | "error" | "off";
  private readonly started = performance.now();
  private progress: TrainProgress = {
    step: 0,
    epoch: 0,
    stepInEpoch: 0,
    stepsPerEpoch: null,
    images: 0,
    elapsedSec: 0,
  };
  private priorElapsed = 0;
  private lastSavedStep = -1;
  private lastMonitorStep = -1;
  private lastCheckpoint: string | undefined;
  private resumedFrom: string | undefined;
  private lastLoss: number | undefined;
  private stop:
    | { reason: "signal" | "aborted" | "time-budget"; signal?: NodeJS.Signals }
    | undefined;
  private totalSteps: number | undefined;
  /** Epoch of the last step that ran (what events report). */
  private lastStepEpoch = 0;
  private warnedShortEpoch = false;

  constructor(
    private readonly host: FitHost,
    private readonly recipe: Recipe<Batch>,
    private readonly loader: BatchSource<Batch>,
    private readonly options: FitOptions<Batch>,
  ) {
    this.sinks = options.sinks ?? [new ConsoleProgressSink()];
    this.warn = options.onWarning ?? ((m: string) => console.warn(m));
    this.leakAction = options.leakCheck?.action ?? "warn";
    this.leaks = this.leakAction === "off" ? undefined : new LeakDetector(options.leakCheck);
  }

  private elapsed(): number {
    return this.priorElapsed + (performance.now() - this.started) / 1000;
  }

  /** `elapsedSec` at which the time budget stops this run (it counts this run only, not a resumed one's). */
  private budgetEnd(): number | undefined {
    const b = this.options.maxSeconds;
    return b === undefined ? undefined : this.priorElapsed + b;
  }

  private base(): EventBase {
    return {
      step: this.progress.step - 1,
      epoch: this.lastStepEpoch,
      elapsedSec: this.elapsed(),
      wallTime: Date.now(),
    };
  }

  private async emit(event: TrainEvent): Promise<void> {
    for (const sink of this.sinks) await sink.onEvent(event);
  }

  private async warning(message: string): Promise<void> {
    // Sinks first: a TTY progress sink clears its line so the warning prints on a clean one.
    await this.emit({ ...this.base(), type: "warning", message });
    this.warn(message);
  }

  async run(): Promise<FitResult> {
    const h = this.options.handleSignals ?? true;
    const removeHandlers =
      this.host.installStopHandlers?.(
        h === true ? ["SIGINT", "SIGTERM"] : h === false ? [] : h,
        (signal) => {
          this.stop = { reason: "signal", signal };
          this.warn(`${signal} received: stopping after the current step and writing a checkpoint`);
        },
      ) ?? (() => {});
    let result: FitResult;
    try {
      result = await this.train();
    } catch (err) {
      removeHandlers();
      try {
        const error = err instanceof Error ? err.message : String(err);
        await this.emit({
          ...this.base(),
          type: "end",
          reason: "error",
          steps: this.progress.step,
          error,
        });
      } catch {
        // The original failure matters more than a sink that fails while reporting it.
      }
      await this.closeSinks(false);
      throw err;
    }
    removeHandlers();
    await this.closeSinks(true);
    return result;
  }

  /** Close every sink; the first failure is rethrown when `rethrow`, after all were tried. */
  private async closeSinks(rethrow: boolean): Promise<void> {
    let first: unknown;
    for (const sink of this.sinks) {
      try {
        await sink.close?.();
      } catch (err) {
        first ??= err;
      }
    }
    if (rethrow && first !== undefined) throw first;
  }

  private async train(): Promise<FitResult> {
    await this.restore();
    this.lastStepEpoch = this.progress.epoch;
    this.planTotal();
    await this.emit({
      ...this.base(),
      type: "start",
      recipe: this.recipe.name,
      startStep: this.progress.step,
      totalSteps: this.totalSteps,
      stepsPerEpoch: this.progress.stepsPerEpoch ?? undefined,
      resumedFrom: this.resumedFrom,
    });
    await this.loop();
    const reason = this.stop?.reason ?? "completed";
    const ck = this.options.checkpoint;
    if (ck && (reason === "completed" ? ck.atEnd !== false : ck.onInterrupt !== false))
      await this.checkpoint(
        reason === "completed"
          ? "end"
          : reason === "signal" || reason === "time-budget"
            ? reason
            : "abort",
      );
    if (reason === "completed" && this.options.monitor && this.options.monitor.atEnd !== false)
      await this.runMonitor();
    await this.emit({ ...this.base(), type: "end", reason, steps: this.progress.step });
    return {
      reason,
      signal: this.stop?.signal,
      steps: this.progress.step,
      epoch: this.progress.epoch,
      elapsedSec: this.elapsed(),
      lastLoss: this.lastLoss,
      checkpoint: this.lastCheckpoint,
      resumedFrom: this.resumedFrom,
    };
  }

  /** Apply `resume` / `startStep`, and work out the batches per epoch. */
  private async restore(): Promise<void> {
    const o = this.options;
    const stated = o.stepsPerEpoch ?? statedLength(this.loader);
    let loaded: LoadedCheckpoint | undefined;
    const folder = this.host.folder;
    if (o.checkpoint && folder) {
      // Writers killed mid-checkpoint leave full-size temp files behind; theirs are gone for good.
      const stale = folder.removeStale(o.checkpoint.dir);
      if (stale.removed.length > 0)
        this.warn(
          `removed ${stale.removed.length} temporary file(s) (${(stale.bytes / 1e6).toFixed(1)} MB) left in ${o.checkpoint.dir} by interrupted checkpoint writes`,
        );
    }
    if (o.resume && folder) {
      const target = o.resume === true ? o.checkpoint!.dir : o.resume;
      loaded = await folder.resume(target, {
        io: o.checkpoint?.io,
        onWarning: (m) => this.warn(m),
      });
      if (!loaded && o.resume !== true)
        throw new ConfigError(`options.resume: no checkpoint at ${JSON.stringify(target)}`);
    }
    if (loaded) {
      try {
        await this.recipe.loadState(loaded.state);
      } finally {
        loaded.dispose();
      }
      this.progress = { ...loaded.progress };
      this.progress.stepsPerEpoch = stated ?? loaded.progress.stepsPerEpoch;
      this.priorElapsed = loaded.progress.elapsedSec;
      this.lastSavedStep = loaded.progress.step;
      this.resumedFrom = loaded.path;
      return;
    }
    this.progress.stepsPerEpoch = stated ?? null;
    const start = o.startStep ?? 0;
    if (start > 0) {
      if (stated === undefined)
        throw new ConfigError(
          `options.startStep: expected options.stepsPerEpoch (or a loader with a length) to place step ${start} in an epoch, got neither`,
        );
      this.progress.step = start;
      this.progress.epoch = Math.floor(start / stated);
      this.progress.stepInEpoch = start % stated;
    }
  }

  private planTotal(): void {
    const { maxSteps, epochs } = this.options;
    const spe = this.progress.stepsPerEpoch;
    const byEpochs = epochs !== undefined && spe !== null ? epochs * spe : undefined;
    this.totalSteps =
      maxSteps !== undefined && byEpochs !== undefined
        ? Math.min(maxSteps, byEpochs)
        : (maxSteps ?? byEpochs ?? this.recipe.totalSteps);
  }

  private done(): boolean {
    const { maxSteps, epochs } = this.options;
    return (
      (maxSteps !== undefined && this.progress.step >= maxSteps) ||
      (epochs !== undefined && this.progress.epoch >= epochs)
    );
  }

  private async loop(): Promise<void> {
    while (!this.done() && !this.stop) {
      const iterator = openEpoch(this.loader, this.progress.epoch);
      let finished: boolean;
      try {
        finished = await this.runEpoch(iterator);
      } finally {
        await iterator.close(); // a no-op on an exhausted iterator; stops a loader cut short
      }
      if (!finished) return;
      await this.endEpoch();
    }
  }

  /** Run the rest of the current epoch; true when its batches are exhausted. */
  private async runEpoch(iterator: EpochIterator<Batch>): Promise<boolean> {
    const o = this.options;
    const p = this.progress;
    for (let i = 0; i < p.stepInEpoch; i++) {
      const skipped = await iterator.next();
      if (skipped.done) return true;
      if (o.disposeBatches !== false) tf.dispose(skipped.value as tf.TensorContainer);
    }
    const yieldedBefore = p.stepInEpoch;
    for (;;) {
      if (this.stop) return false;
      if (o.signal?.aborted) {
        this.stop = { reason: "aborted" };
        return false;
      }
      const budgetEnd = this.budgetEnd();
      if (budgetEnd !== undefined && this.elapsed() >= budgetEnd) {
        this.stop = { reason: "time-budget" };
        return false;
      }
      if (o.maxSteps !== undefined && p.step >= o.maxSteps) return false;
      if (p.stepsPerEpoch !== null && p.stepInEpoch >= p.stepsPerEpoch) return true;
      const t0 = performance.now();
      const next = await iterator.next();
      if (next.done) {
        if (p.stepInEpoch === 0 && yieldedBefore === 0)
          throw new ConfigError(
            `loader: epoch ${p.epoch} produced no batches (a generator object can be iterated only once: pass a function epoch => iterable to fit)`,
          );
        return true;
      }
      await this.step(next.value, t0);
      await yieldToEventLoop(); // lets signal handlers run between synchronous steps
    }
  }

  private async step(batch: Batch, t0: number): Promise<void> {
    const o = this.options;
    const p = this.progress;
    const t1 = performance.now();
    let result: StepResult;
    let images: number;
    try {
      images = countImages(batch, o.batchSize);
      result = checkStepResult(await this.recipe.trainStep(batch, p.step), p.step);
    } finally {
      if (o.disposeBatches !== false) tf.dispose(batch as tf.TensorContainer);
    }
    const t2 = performance.now();
    const terms = result.terms ?? {};
    if (o.nonFiniteLoss !== "off" && !isFiniteLoss(result.loss, terms))
      throw new NonFiniteLossError(p.step, result.loss, terms, this.divergedCheckpoints(p.step));
    const tensors = tf.memory().numTensors;
    const leak = this.leaks?.observe(p.step, tensors);
    if (leak) {
      if (this.leakAction === "error") throw new TensorLeakError(leak);
      await this.warning(leak);
    }
    p.step++;
    p.stepInEpoch++;
    this.lastStepEpoch = p.epoch;
    p.images += images;
    this.lastLoss = result.loss;
    const event: StepEvent = {
      ...this.base(),
      type: "step",
      loss: result.loss,
      terms,
      ...result.schedule,
      images,
      imagesPerSec: images / Math.max((t2 - t0) / 1000, 1e-9),
      stepMs: t2 - t1,
      dataMs: t1 - t0,
      tensors,
      totalSteps: this.totalSteps,
      stepsPerEpoch: p.stepsPerEpoch ?? undefined,
      ...(this.budgetEnd() !== undefined ? { budgetEndSec: this.budgetEnd() } : {}),
    };
    await this.emit(event);
    await o.onStep?.(event);
    const ck = o.checkpoint;
    if (ck?.everySteps && p.step % ck.everySteps === 0) await this.checkpoint("interval");
    const m = o.monitor;
    if (m?.everySteps && p.step % m.everySteps === 0) await this.runMonitor();
  }

  private async endEpoch(): Promise<void> {
    const p = this.progress;
    if (p.stepsPerEpoch === null) {
      p.stepsPerEpoch = p.stepInEpoch;
      this.planTotal();
    } else if (p.stepInEpoch < p.stepsPerEpoch && !this.warnedShortEpoch) {
      this.warnedShortEpoch = true;
      await this.warning(
        `loader: epoch ${p.epoch} yielded ${p.stepInEpoch} batches, fewer than stepsPerEpoch = ${p.stepsPerEpoch}; the step count and ETA assume ${p.stepsPerEpoch}`,
      );
    }
    const steps = p.stepInEpoch;
    await this.emit({ ...this.base(), type: "epoch", steps });
    const finishedEpoch = p.epoch + 1;
    p.epoch++;
    p.stepInEpoch = 0;
    const ck = this.options.checkpoint;
    if (ck?.everyEpochs && finishedEpoch % ck.everyEpochs === 0) await this.checkpoint("epoch");
    const m = this.options.monitor;
    if (m?.everyEpochs && finishedEpoch % m.everyEpochs === 0) await this.runMonitor();
  }

  private async checkpoint(reason: CheckpointEvent["reason"]): Promise<void> {
    const ck = this.options.checkpoint;
    const folder = this.host.folder;
    if (!ck || !folder || this.progress.step === this.lastSavedStep) return;
    const progress: TrainProgress = { ...this.progress, elapsedSec: this.elapsed() };
    // A checkpoint taken on an epoch's last step resumes at the next epoch's start.
    if (progress.stepsPerEpoch !== null && progress.stepInEpoch >= progress.stepsPerEpoch) {
      progress.epoch++;
      progress.stepInEpoch = 0;
    }
    const state = await this.recipe.saveState();
    let path: string;
    try {
      if (this.options.nonFiniteLoss !== "off") {
        const bad = await firstNonFinite(state.tensors);
        if (bad)
          throw new NonFiniteStateError(
            this.progress.step,
            bad,
            this.lastCheckpoint ?? this.resumedFrom,
          );
      }
      // At least two are kept: when the newest turns out to hold diverged weights (see
      // divergedCheckpoints), the one before it is what training can resume from.
      const keepLast = ck.keepLast ?? 3;
      path = await folder.write(ck.dir, this.recipe.name, progress, state, {
        keepLast: keepLast === 0 ? 0 : Math.max(keepLast, 2),
        io: ck.io,
        versions: libraryVersions(),
        onWarning: (m) => this.warn(m),
      });
    } finally {
      // Variables are the recipe's live state; any other tensor was made for this checkpoint.
      for (const t of Object.values(state.tensors)) if (!(t instanceof tf.Variable)) t.dispose();
    }
    this.lastSavedStep = this.progress.step;
    this.lastCheckpoint = path;
    await this.emit({ ...this.base(), type: "checkpoint", path, reason });
  }

  /**
   * On a non-finite loss at `step`: the checkpoint written after `step` steps (if this run wrote
   * or resumed from it) holds the weights that produced it, so it is set aside and `latest` goes
   * back to the one before.
   */
  private divergedCheckpoints(step: number): DivergedCheckpoints | undefined {
    const ck = this.options.checkpoint;
    const folder = this.host.folder;
    if (!ck || !folder) return undefined;
    if (this.lastSavedStep === step)
      return { dir: ck.dir, ...folder.setAsideDiverged(ck.dir, step) };
    return { dir: ck.dir, lastGood: this.lastCheckpoint ?? this.resumedFrom };
  }

  private async runMonitor(): Promise<void> {
    const m = this.options.monitor!;
    if (this.progress.step === this.lastMonitorStep) return; // e.g. an epoch end that is also the end
    this.lastMonitorStep = this.progress.step;
    const t0 = performance.now();
    const metrics = await m.fn({
      step: this.progress.step,
      epoch: this.lastStepEpoch,
      recipe: this.recipe,
    });
    checkMonitorMetrics(metrics);
    const durationSec = (performance.now() - t0) / 1000;
    await this.emit({ ...this.base(), type: "monitor", metrics, durationSec });
  }
}
