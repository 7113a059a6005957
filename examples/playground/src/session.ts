// One training run inside the worker: the recipe (createSiT, as `sit pretrain` builds it), the
// data loader with SiT's two-view transform, and @sit/train's `fit` driving the steps, with
// pause/resume/stop and the pictures and k-NN reports in between.
import {
  DataLoader,
  type NormalizeStats,
  type RunImageSettings,
  runTwoViewTransform,
} from "@sit/data";
import { type SitRecipe, createSiT } from "@sit/recipes";
import {
  type MetricSink,
  type StepEvent,
  type TrainEvent,
  type TrainProgress,
  fit,
} from "@sit/train";
import { spreadSubset } from "./data";
import {
  KNN_MEMORY,
  attentionReport,
  datasetOf,
  knnTop1,
  pictureImages,
  reconstructions,
} from "./inspect";
import type { FromWorker, ImageSet, PretrainConfigJson, StartRun } from "./protocol";
import { describePageRun } from "./run-config";

/** Images shown in the reconstruction and attention panels. */
const PICTURE_IMAGES = 6;

/**
 * The recipe config of a page run as `sit pretrain` derives it from the config file: the input
 * channels from the data, the steps per epoch from the number of training images.
 */
export function recipeConfigOf(config: PretrainConfigJson, train: ImageSet) {
  const c = config.config;
  const trainImages = train.count;
  if (train.channels !== config.data.channels)
    throw new Error(
      `this run needs ${config.data.channels}-channel images (its data: ${config.data.dataset}), the page holds ${train.channels}-channel ones: load matching images first`,
    );
  const stepsPerEpoch = Math.floor(trainImages / c.optim.batchSize);
  if (stepsPerEpoch < 1)
    throw new Error(
      `batch size ${c.optim.batchSize} is larger than the ${trainImages} training images: pick a smaller model preset or add images`,
    );
  return {
    ...c,
    backbone: { ...c.backbone, inChans: config.data.channels },
    optim: { ...c.optim, stepsPerEpoch },
  };
}

export class TrainingSession {
  readonly recipe: SitRecipe;
  readonly stats: NormalizeStats | null;
  private readonly abort = new AbortController();
  private paused: { promise: Promise<void>; release: () => void } | null = null;
  private pending: Array<() => Promise<void>> = [];
  /** Whether `fit` is driving steps (jobs then wait for the end of the current step). */
  private inFit = false;
  /** Whether the run waits in a pause between two steps. */
  private parked = false;
  /** Where the run stands after its last step (what a checkpoint records). */
  progress: TrainProgress;
  private readonly size: number;
  private readonly stepsPerEpoch: number;

  constructor(
    private readonly run: StartRun,
    private readonly post: (message: FromWorker, transfer?: Transferable[]) => void,
  ) {
    this.stats = describePageRun(run.config).stats;
    const recipeConfig = recipeConfigOf(run.config, run.data.train);
    this.stepsPerEpoch = recipeConfig.optim.stepsPerEpoch;
    this.recipe = createSiT(recipeConfig);
    this.size = this.recipe.backbone().imgSize[0];
    this.progress = {
      step: 0,
      epoch: 0,
      stepInEpoch: 0,
      stepsPerEpoch: this.stepsPerEpoch,
      images: 0,
      elapsedSec: 0,
    };
  }

  /** The run's `sit pretrain` config. */
  get config(): PretrainConfigJson {
    return this.run.config;
  }

  /** The random-init k-NN value, then training until the schedule ends, `maxSteps`, or {@link stop}. */
  async train(startStep: number, priorElapsedSec: number): Promise<void> {
    const { config, data, every } = this.run;
    const memory = spreadSubset(data.train, KNN_MEMORY);
    const images = pictureImages(data.heldOut, PICTURE_IMAGES, this.size, this.stats);
    const report = async (step: number) => {
      this.post(await reconstructions(this.recipe, images, step, this.stats));
      this.post(await attentionReport(this.recipe, images, step, this.stats));
    };
    const knn = async (step: number) => {
      const r = await knnTop1(this.recipe, memory, data.heldOut, this.size, this.stats);
      if (r) this.post({ type: "knn", step, ...r });
    };
    try {
      await report(startStep);
      await knn(startStep);
      const batchSize = config.config.optim.batchSize;
      const loader = new DataLoader(datasetOf(data.train), {
        // The settings as `sit pretrain` records them (its config schema checked them).
        transform: runTwoViewTransform(config.data as RunImageSettings, this.size, this.stats),
        batchSize,
        seed: this.recipe.config.seed,
        dropLast: true,
      });
      const sink: MetricSink = { onEvent: (e) => this.onEvent(e, priorElapsedSec) };
      this.inFit = true;
      try {
        await fit(this.recipe, (e) => loader.epoch(e), {
          epochs: this.recipe.config.optim.epochs,
          ...(this.run.maxSteps !== undefined ? { maxSteps: this.run.maxSteps } : {}),
          stepsPerEpoch: this.stepsPerEpoch,
          batchSize,
          ...(startStep > 0 ? { startStep } : {}),
          sinks: [sink],
          handleSignals: false,
          signal: this.abort.signal,
          onWarning: (m) => console.warn(`[playground] ${m}`),
          onStep: async (e) => {
            const done = e.step + 1;
            if (every.picturesSteps > 0 && done % every.picturesSteps === 0) await report(done);
            if (every.knnSteps > 0 && done % every.knnSteps === 0) await knn(done);
            await this.betweenSteps();
          },
        });
      } finally {
        await loader.close();
        // A checkpoint asked for during the last step is written now (no step follows to run it).
        this.inFit = false;
        await this.runPending();
      }
      // The last step's pictures and k-NN, unless its onStep already reported them.
      const last = this.progress.step;
      if (!this.abort.signal.aborted) {
        if (every.picturesSteps <= 0 || last % every.picturesSteps !== 0) await report(last);
        if (every.knnSteps <= 0 || last % every.knnSteps !== 0) await knn(last);
      }
    } finally {
      images.dispose();
    }
  }

  private onEvent(e: TrainEvent, priorElapsedSec: number): void {
    if (e.type !== "step") return;
    const s = e as StepEvent;
    const p = this.progress;
    p.step = s.step + 1;
    p.epoch = Math.floor(p.step / this.stepsPerEpoch);
    p.stepInEpoch = p.step % this.stepsPerEpoch;
    p.images += s.images;
    p.elapsedSec = priorElapsedSec + s.elapsedSec;
    this.post({
      type: "step",
      step: s.step,
      epoch: s.epoch,
      totalSteps: s.totalSteps ?? 0,
      loss: s.loss,
      terms: s.terms,
      lr: s.lr ?? Number.NaN,
      imagesPerSec: s.imagesPerSec,
      elapsedSec: p.elapsedSec,
    });
  }

  /** Between two steps: run what was asked meanwhile (checkpoints), and wait while paused. */
  private async betweenSteps(): Promise<void> {
    for (;;) {
      await this.runPending();
      if (!this.paused || this.abort.signal.aborted) return;
      this.parked = true;
      try {
        await this.paused.promise;
      } finally {
        this.parked = false;
      }
    }
  }

  private async runPending(): Promise<void> {
    const jobs = this.pending;
    this.pending = [];
    for (const job of jobs) await job();
  }

  /**
   * Run `job` where the recipe's state is consistent: at once when no step is under way (not
   * training, or parked by a pause between two steps), else right after the current step — a
   * pause asked for during a step takes effect only after it.
   */
  whenIdle(job: () => Promise<void>): Promise<void> {
    if (!this.inFit || this.parked) return job();
    return new Promise((resolve, reject) => {
      this.pending.push(() => job().then(resolve, reject));
    });
  }

  pause(): void {
    if (this.paused) return;
    let release!: () => void;
    const promise = new Promise<void>((r) => {
      release = r;
    });
    this.paused = { promise, release };
  }

  resume(): void {
    const p = this.paused;
    this.paused = null;
    p?.release();
  }

  /** Stop after the current step (fit returns with reason "aborted"). */
  stop(): void {
    this.abort.abort();
    this.resume();
  }

  dispose(): void {
    this.recipe.dispose();
  }
}
