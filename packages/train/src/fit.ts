import { ConfigError, isHostBackend } from "@sit/core";
import * as tf from "@tensorflow/tfjs";
import type { TrainProgress } from "./checkpoint-format";
import type { CheckpointEvent, EventBase, MetricSink, StepEvent, TrainEvent } from "./events";
import {
  LeakDetector,
  NonFiniteLossError,
  TensorLeakError,
  checkMonitorMetrics,
  isFiniteLoss,
} from "./guards";
import {
  type BatchSource,
  type EpochIterator,
  checkBatchSource,
  openEpoch,
  statedLength,
} from "./loader";
import { type FitOptions, type FitResult, checkFitOptions, checkRecipe } from "./options";
import { FitCheckpoints } from "./fit-checkpoints";
import type { FitHost } from "./fit-host";
import type { Recipe } from "./recipe";
import { ConsoleProgressSink } from "./sinks/console";
import { type RanStep, StepRunner } from "./step-runner";

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
 * On webgpu (a backend whose reads are asynchronous) a recipe with `launchStep` runs with its loss
 * read one step late (`options.readLossLate`): the device never waits for the host, every step is
 * still reported in order, and a checkpoint is written only once the loss of its step was read
 * (and found finite). Training that stops reads the step still in flight before its last checkpoint.
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
  if (options.readLossLate && typeof recipe.launchStep !== "function")
    throw new ConfigError(
      `options.readLossLate: true needs recipe.launchStep (the step without its read-back), but recipe "${recipe.name}" has none`,
    );
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
  private readonly runner: StepRunner<Batch>;
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
  private readonly checkpoints: FitCheckpoints<Batch>;
  private lastMonitorStep = -1;
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
    const late =
      options.readLossLate ?? (typeof recipe.launchStep === "function" && !isHostBackend());
    this.checkpoints = new FitCheckpoints(host, recipe, options, this.warn);
    this.runner = new StepRunner(recipe, late, {
      disposeBatches: options.disposeBatches !== false,
      batchSize: options.batchSize,
    });
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
      resumedFrom: this.checkpoints.resumedFrom,
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
      checkpoint: this.checkpoints.lastWritten,
      resumedFrom: this.checkpoints.resumedFrom,
    };
  }

  /** Apply `resume` / `startStep`, and work out the batches per epoch. */
  private async restore(): Promise<void> {
    const o = this.options;
    const stated = o.stepsPerEpoch ?? statedLength(this.loader);
    const loaded = await this.checkpoints.restore();
    if (loaded) {
      this.progress = { ...loaded, stepsPerEpoch: stated ?? loaded.stepsPerEpoch };
      this.priorElapsed = loaded.elapsedSec;
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
        // The step still in flight ends the epoch (or the run) before its checkpoint and events.
        await this.drain();
      } catch (err) {
        await this.runner.discard();
        throw err;
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
      // Steps launched, counting the one whose loss is not read yet.
      const step = p.step + this.runner.inFlight;
      const inEpoch = p.stepInEpoch + this.runner.inFlight;
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
      if (o.maxSteps !== undefined && step >= o.maxSteps) return false;
      if (p.stepsPerEpoch !== null && inEpoch >= p.stepsPerEpoch) return true;
      const t0 = performance.now();
      const next = await iterator.next();
      if (next.done) {
        if (inEpoch === 0 && yieldedBefore === 0)
          throw new ConfigError(
            `loader: epoch ${p.epoch} produced no batches (a generator object can be iterated only once: pass a function epoch => iterable to fit)`,
          );
        return true;
      }
      const ran = await this.runner.run(next.value, step, performance.now() - t0);
      if (ran) await this.finish(ran);
      // A checkpoint or monitor due after the step in flight needs its loss read and the weights
      // it left: read it now, before the next step changes them.
      if (this.runner.inFlight > 0 && this.dueAfter(p.step + 1)) await this.drain();
      await yieldToEventLoop(); // lets signal handlers run between synchronous steps
    }
  }

  /** Whether a checkpoint or the monitor is due once `steps` steps are done. */
  private dueAfter(steps: number): boolean {
    const ck = this.options.checkpoint?.everySteps;
    const m = this.options.monitor?.everySteps;
    return (ck !== undefined && steps % ck === 0) || (m !== undefined && steps % m === 0);
  }

  /** Read the step still in flight (late path), then report it. */
  private async drain(): Promise<void> {
    const ran = await this.runner.drain();
    if (ran) await this.finish(ran);
  }

  /** Guards, events, checkpoint and monitor of a step whose loss has been read. */
  private async finish(ran: RanStep): Promise<void> {
    const o = this.options;
    const p = this.progress;
    const { result, images } = ran;
    const terms = result.terms ?? {};
    if (o.nonFiniteLoss !== "off" && !isFiniteLoss(result.loss, terms))
      throw new NonFiniteLossError(
        ran.step,
        result.loss,
        terms,
        this.checkpoints.diverged(ran.step),
      );
    // The values of a step still in flight are not a leak.
    const tensors = tf.memory().numTensors - this.runner.heldTensors;
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
      imagesPerSec: images / Math.max((ran.dataMs + ran.stepMs) / 1000, 1e-9),
      stepMs: ran.stepMs,
      dataMs: ran.dataMs,
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
    const progress: TrainProgress = { ...this.progress, elapsedSec: this.elapsed() };
    // A checkpoint taken on an epoch's last step resumes at the next epoch's start.
    if (progress.stepsPerEpoch !== null && progress.stepInEpoch >= progress.stepsPerEpoch) {
      progress.epoch++;
      progress.stepInEpoch = 0;
    }
    const path = await this.checkpoints.write(progress);
    if (path) await this.emit({ ...this.base(), type: "checkpoint", path, reason });
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
