import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { writeFileAtomic } from "@sit/core/node";
import { DataLoader } from "@sit/data";
import {
  ConsoleProgressSink,
  type FitResult,
  type MetricSink,
  type MonitorOptions,
  type StepEvent,
} from "@sit/train";
import { JsonlSink, TensorBoardSink, fit, listCheckpoints } from "@sit/train/node";
import { startBackend } from "../backend";
import { limitDataset, prepareDataset, skippedImages } from "../datasets";
import { fitWasmHeap } from "../heap";
import { knnOfBackbone, openSplit } from "../features";
import { RunFilesSink, checkOutFolder } from "../run-files";
import { type CliIO, UsageError, note, pct } from "../io";
import {
  type RunInfo,
  inputSize,
  recipeTransform,
  runInfoOf,
  withChannels,
  withStepsPerEpoch,
} from "../model";
import {
  RecipeWithRunInfo,
  type TrainedRecipe,
  createRecipe,
  networkOf,
  optimDefaults,
} from "../recipes";
import { resolvePretrainRun, scheduleWarnings } from "../resolved-config";
import { TrainingPictures, configMarkdown, flattenHparams } from "../tensorboard-extras";
import type { PretrainConfig } from "../run-config";

/** Options of {@link pretrain} besides the config. */
export interface PretrainRunOptions {
  /** Continue from `<out>/checkpoints` (true) or from a given checkpoint file or folder. */
  resume?: boolean | string;
  /** Catch SIGINT/SIGTERM: checkpoint and return with reason "signal" (default true). */
  handleSignals?: boolean;
  /** Aborting stops after the current step, with a checkpoint. */
  signal?: AbortSignal;
}

/** What {@link pretrain} did. */
export interface PretrainResult {
  /** "completed", "signal" (SIGINT/SIGTERM), "aborted" (options.signal) or "time-budget" (train.maxMinutes). */
  reason: FitResult["reason"];
  /** The signal that stopped the run (reason "signal"). */
  signal?: NodeJS.Signals;
  steps: number;
  /** Epoch of the next step. */
  epoch: number;
  stepsPerEpoch: number;
  elapsedSec: number;
  lastLoss?: number;
  /** The last checkpoint written. */
  checkpoint?: string;
  resumedFrom?: string;
  /** Output folder (absolute). */
  out: string;
  /** The last online k-NN result, when the monitor ran. */
  monitor?: Record<string, number>;
}

/**
 * `sit pretrain`: self-supervised pretraining of a recipe (SiT by default) on a dataset, with
 * checkpoints (keep-last-k), JSONL and TensorBoard metrics, console progress, resume, and an
 * optional online k-NN monitor on the held-out split. Output folder layout: `run.json` (the
 * resolved config), `checkpoints/`, `metrics.jsonl`, `tb/`.
 */
export async function pretrain(
  config: PretrainConfig,
  io: CliIO,
  options: PretrainRunOptions = {},
): Promise<PretrainResult> {
  const out = resolve(config.out);
  const ckptDir = join(out, "checkpoints");
  checkOutFolder(out);
  if (!options.resume && listCheckpoints(ckptDir).length > 0)
    throw new UsageError(
      `--out: ${ckptDir} already holds checkpoints; pass --resume to continue that run, or choose another --out`,
    );
  await startBackend(config.backend, io);
  const kind = await prepareDataset(config.data, io);
  const images = limitDataset(kind.open("pretrain"), config.data.limit);
  const { batchSize } = optimDefaults(config.config.optim);
  if (batchSize > images.length)
    throw new UsageError(
      `--batch-size: expected at most the ${images.length} pretraining images, got ${batchSize}`,
    );
  const stepsPerEpoch = Math.floor(images.length / batchSize);
  // On wasm: recomputation on by itself if the step needs it, or a fast, numbered refusal.
  const recipeConfig = await fitWasmHeap(
    config.recipe,
    withChannels(withStepsPerEpoch(config.config, stepsPerEpoch), config.data.channels),
    batchSize,
    io,
  );
  const recipe = createRecipe(config.recipe, recipeConfig);
  const run = runInfoOf(config, kind);
  const loader = new DataLoader(images, {
    transform: recipeTransform(recipe, run, inputSize(networkOf(recipe).backbone)),
    batchSize,
    seed: recipe.config.seed,
    dropLast: true,
    prefetch: config.data.prefetch,
  });
  // run.json holds the config as the run resolved it (every default, the preset, the schedules).
  // (with the block recomputation that fitWasmHeap chose).
  const backbone = recipeConfig.backbone as { checkpointBlocks?: boolean };
  const asRun = { ...config, config: { ...config.config, backbone } } as PretrainConfig;
  const resolved = resolvePretrainRun(asRun, images.length);
  for (const w of scheduleWarnings(resolved.config, resolved.derived)) io.err(`warning: ${w}\n`);
  describeRun(config, recipe, run, images.length, stepsPerEpoch, io);

  // TensorBoard also gets the resolved config (Text tab), its values (HParams tab) and pictures.
  let tb: TensorBoardSink | undefined;
  const imagesEvery = config.train.tensorboard
    ? (config.train.tensorboardImagesEvery ?? stepsPerEpoch)
    : 0;
  const pictures =
    imagesEvery > 0 ? await TrainingPictures.create(recipe, run, kind, images) : undefined;
  // The run's files appear when training starts: a failed --resume leaves the folder as it was.
  const runFiles = new RunFilesSink(() => {
    mkdirSync(out, { recursive: true });
    writeFileAtomic(join(out, "run.json"), `${JSON.stringify(resolved, null, 2)}\n`);
    const files: MetricSink[] = [new JsonlSink(join(out, "metrics.jsonl"))];
    if (config.train.tensorboard) {
      tb = new TensorBoardSink(join(out, "tb"));
      tb.text("config/run.json", configMarkdown(resolved));
      tb.hparams(flattenHparams(resolved));
      files.push(tb);
    }
    return files;
  });
  const sinks: MetricSink[] = [runFiles];
  if (!io.quiet)
    sinks.push(new ConsoleProgressSink(io.progressStream ? { stream: io.progressStream } : {}));
  let lastMonitor: Record<string, number> | undefined;
  const optimEpochs = (recipe.config.optim as { epochs: number }).epochs;
  try {
    const result = await fit(new RecipeWithRunInfo(recipe, run), (e) => loader.epoch(e), {
      epochs: optimEpochs,
      ...(config.train.steps !== undefined ? { maxSteps: config.train.steps } : {}),
      stepsPerEpoch,
      batchSize,
      resume: options.resume ?? false,
      checkpoint: {
        dir: ckptDir,
        ...(config.train.checkpointEverySteps
          ? { everySteps: config.train.checkpointEverySteps }
          : {}),
        everyEpochs: config.train.checkpointEveryEpochs ?? 1,
        keepLast: config.train.keepLast,
      },
      sinks,
      ...(config.monitor.knnEvery ? { monitor: knnMonitor(config, run, recipe, io) } : {}),
      // Warnings (a skipped unreadable checkpoint…) are not progress: -q does not hide them.
      onWarning: (m) => io.err(`warning: ${m}\n`),
      ...(options.handleSignals !== undefined ? { handleSignals: options.handleSignals } : {}),
      ...(options.signal ? { signal: options.signal } : {}),
      ...(pictures
        ? {
            onStep: async (e: StepEvent) => {
              if ((e.step + 1) % imagesEvery === 0 && tb) await pictures.write(tb, e.step + 1);
            },
          }
        : {}),
      // fit stops after the step that spends the budget, with a checkpoint, and its ETA honours it.
      ...(config.train.maxMinutes !== undefined
        ? { maxSeconds: config.train.maxMinutes * 60 }
        : {}),
    });
    const summary: PretrainResult = {
      reason: result.reason,
      ...(result.signal ? { signal: result.signal } : {}),
      steps: result.steps,
      epoch: result.epoch,
      stepsPerEpoch,
      elapsedSec: result.elapsedSec,
      ...(result.lastLoss !== undefined ? { lastLoss: result.lastLoss } : {}),
      ...(result.checkpoint ? { checkpoint: result.checkpoint } : {}),
      ...(result.resumedFrom ? { resumedFrom: result.resumedFrom } : {}),
      out,
      ...(lastMonitor ? { monitor: lastMonitor } : {}),
    };
    writeFileAtomic(join(out, "summary.json"), `${JSON.stringify(summary, null, 2)}\n`);
    return summary;
  } finally {
    await loader.close();
    pictures?.dispose();
    recipe.dispose();
    const skipped = skippedImages(kind);
    if (skipped) io.err(`warning: ${skipped}\n`);
  }

  function knnMonitor(
    cfg: PretrainConfig,
    info: RunInfo,
    r: typeof recipe,
    cio: CliIO,
  ): MonitorOptions<unknown> {
    const m = cfg.monitor;
    const splits = {
      train: openSplit(kind, "train", m.samples),
      test: openSplit(kind, "test", m.samples),
    };
    return {
      everyEpochs: m.knnEvery,
      atEnd: true,
      fn: async () => {
        const { backbone } = networkOf(r, m.weights);
        const { results } = await knnOfBackbone(
          backbone,
          info,
          kind,
          splits,
          [m.k],
          { pool: "cls", batchSize: 256 },
          { ...cio, quiet: true },
        );
        lastMonitor = { knn_top1: results[0].top1, knn_top5: results[0].top5, knn_k: results[0].k };
        return lastMonitor;
      },
    };
  }
}

function describeRun(
  config: PretrainConfig,
  recipe: TrainedRecipe,
  run: RunInfo,
  images: number,
  stepsPerEpoch: number,
  io: CliIO,
): void {
  const b = networkOf(recipe).backbone;
  const o = recipe.config.optim as { batchSize: number; epochs: number };
  const channels = `${run.data.channels} channel${run.data.channels === 1 ? "" : "s"}`;
  const stop = config.train.steps ? ` (stopping at step ${config.train.steps})` : "";
  note(
    io,
    `[sit] pretrain ${recipe.name} on ${config.data.dataset} (${images} images, ${channels}, normalisation ${config.data.normalize}): ` +
      `ViT D ${b.embedDim}, depth ${b.depth}, ${b.numHeads} heads, patch ${b.patchSize} at ${b.imgSize[0]} px; ` +
      `batch ${o.batchSize}, ${o.epochs} epochs × ${stepsPerEpoch} steps${stop}; output ${resolve(config.out)}`,
  );
}

/** One summary line of a pretraining result. */
export function pretrainSummaryLine(r: PretrainResult): string {
  const monitor = r.monitor
    ? `; k-NN top-1 ${pct(r.monitor.knn_top1)} (k = ${r.monitor.knn_k})`
    : "";
  const loss = r.lastLoss !== undefined ? `; last loss ${r.lastLoss.toFixed(4)}` : "";
  const how =
    r.reason === "time-budget"
      ? "stopped at its time budget"
      : r.reason === "signal"
        ? `stopped by ${r.signal ?? "a signal"}`
        : r.reason;
  return `pretrain ${how}: ${r.steps} steps in ${r.elapsedSec.toFixed(1)} s${loss}${monitor}`;
}
