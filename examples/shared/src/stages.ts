import { appendFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import type { Module, RawTensor } from "@sit/core";
import { loadSafetensors, writeSafetensors } from "@sit/core/node";
import type { Dataset } from "@sit/data";
import {
  type ClassifierHead,
  type FineTuneOptions,
  type ImageTransform,
  confusionMatrix,
  evaluateClassifier,
  fineTune,
  knnEval,
  meanPerClassAccuracy,
  predictClasses,
} from "@sit/eval";
import { extractFeatures } from "@sit/eval/node";
import { ConsoleProgressSink, type FitResult, type MetricSink, type Recipe } from "@sit/train";
import { JsonlSink, fit } from "@sit/train/node";
import type { VisionTransformer } from "@sit/vit";

/** Where a stage writes and how loudly. */
export interface StageIO {
  /** Output folder of the run. */
  out: string;
  /** No console progress (tests). */
  quiet?: boolean;
  log?: (line: string) => void;
}

/** Summary of a pretraining run. */
export interface PretrainSummary {
  steps: number;
  epochs: number;
  elapsedSec: number;
  lastLoss?: number;
  /** Mean wall time of a step after the first two (data loading included), ms. */
  meanStepMs?: number;
}

/** Options of {@link pretrain}. */
export interface PretrainOptions extends StageIO {
  /** A function from epoch to batches (e.g. `(e) => loader.epoch(e)`). */
  loader: (epoch: number) => AsyncIterable<unknown> | Iterable<unknown>;
  epochs: number;
  stepsPerEpoch: number;
  maxSteps?: number;
  checkpointEveryEpochs?: number;
  /** Sub-folder of `out` for checkpoints and the metrics log. Default "pretrain". */
  name?: string;
}

/**
 * Pretrain any @sit/train recipe with checkpoints under `out/<name>/checkpoints` (resumed when
 * present) and every step logged to `out/<name>/metrics.jsonl`. Returns undefined when the run was
 * interrupted (Ctrl-C: a checkpoint was written; running again continues).
 */
export async function pretrain<B>(
  recipe: Recipe<B>,
  options: PretrainOptions,
): Promise<PretrainSummary | undefined> {
  const dir = join(options.out, options.name ?? "pretrain");
  mkdirSync(dir, { recursive: true });
  const sinks: MetricSink[] = [new JsonlSink(join(dir, "metrics.jsonl"))];
  if (!options.quiet) sinks.push(new ConsoleProgressSink());
  let timed = 0;
  let timedMs = 0;
  const result: FitResult = await fit(
    recipe,
    options.loader as (epoch: number) => AsyncIterable<B>,
    {
      epochs: options.epochs,
      maxSteps: options.maxSteps,
      stepsPerEpoch: options.stepsPerEpoch,
      checkpoint: {
        dir: join(dir, "checkpoints"),
        everyEpochs: options.checkpointEveryEpochs ?? 10,
        keepLast: 2,
      },
      resume: true,
      sinks,
      onStep: (e) => {
        if (e.step >= 2) {
          timed++;
          timedMs += e.stepMs + e.dataMs;
        }
      },
    },
  );
  if (result.reason !== "completed") {
    options.log?.(`pretraining interrupted at step ${result.steps}; run again to continue`);
    return undefined;
  }
  return {
    steps: result.steps,
    epochs: result.epoch,
    elapsedSec: result.elapsedSec,
    lastLoss: result.lastLoss,
    meanStepMs: timed > 0 ? timedMs / timed : undefined,
  };
}

/** Save a module's weights (parameters and buffers) as safetensors. */
export function saveWeights(module: Module, path: string, meta: Record<string, string> = {}): void {
  writeSafetensors(path, module.stateDict(), meta);
}

/**
 * Tensors read back asynchronously as raw safetensors data: WebGPU under Node has no synchronous
 * read, so weights are read with `await tensor.data()` before they are written.
 */
export async function readBackTensors(
  dict: Record<string, tf.Tensor>,
): Promise<Record<string, RawTensor>> {
  const out: Record<string, RawTensor> = {};
  for (const [k, t] of Object.entries(dict)) {
    const data = await t.data();
    out[k] =
      t.dtype === "int32"
        ? { dtype: "I32", shape: t.shape, data: data as Int32Array }
        : { dtype: "F32", shape: t.shape, data: Float32Array.from(data) };
  }
  return out;
}

/** {@link saveWeights} on every backend (reads the weights back asynchronously). */
export async function saveWeightsAsync(
  module: Module,
  path: string,
  meta: Record<string, string> = {},
): Promise<void> {
  writeSafetensors(path, await readBackTensors(module.stateDict()), meta);
}

/** Load weights saved by {@link saveWeights} into `module` (all names must match). */
export function loadWeights(module: Module, path: string): void {
  const { tensors } = loadSafetensors(path);
  try {
    module.loadStateDict(tensors);
  } finally {
    tf.dispose(Object.values(tensors));
  }
}

/** Result of {@link knnStage}. */
export interface KnnSummary {
  k: number;
  top1: number;
  top5: number;
  trainRows: number;
  testRows: number;
}

/** Weighted k-NN (DINO's protocol) on the CLS features of a frozen backbone. */
export async function knnStage(
  backbone: VisionTransformer,
  train: Dataset,
  test: Dataset,
  options: { k: number; transform: ImageTransform; numClasses?: number; batchSize?: number },
): Promise<KnnSummary> {
  const extract = {
    pool: "cls" as const,
    transform: options.transform,
    batchSize: options.batchSize,
  };
  const trainF = await extractFeatures(backbone, train, extract);
  const testF = await extractFeatures(backbone, test, extract);
  const k = Math.min(options.k, trainF.labels.length);
  const [r] = knnEval(trainF, testF, { ks: [k], numClasses: options.numClasses });
  return {
    k,
    top1: r.top1,
    top5: r.top5,
    trainRows: trainF.labels.length,
    testRows: testF.labels.length,
  };
}

/** Result of {@link fineTuneStage}. */
export interface FineTuneSummary {
  epochs: number;
  last: { epoch: number; top1: number; top5: number };
  bestTest: { epoch: number; top1: number; top5: number };
  /** Final model on the test split: top-1, top-5, mean per-class accuracy. */
  evaluation: { top1: number; top5: number; meanPerClass: number };
  trainImages: number;
}

/**
 * Fine-tune `model` with @sit/eval's `fineTune` (one JSON line per epoch in `out/finetune.jsonl`),
 * evaluate the result on `test`, and save model + head weights to `out/finetuned.safetensors`.
 */
export async function fineTuneStage(
  model: VisionTransformer,
  train: Dataset,
  test: Dataset,
  options: FineTuneOptions &
    StageIO & { testTransform: ImageTransform; numClasses: number; name?: string },
): Promise<FineTuneSummary> {
  const { out, quiet, log, testTransform, name = "finetune", ...ft } = options;
  mkdirSync(out, { recursive: true });
  const logFile = join(out, `${name}.jsonl`);
  let head: ClassifierHead | undefined;
  try {
    const result = await fineTune(model, train, test, {
      ...ft,
      onEpoch: async (e) => {
        appendFileSync(logFile, `${JSON.stringify({ ...e, wallTime: Date.now() / 1000 })}\n`);
        if (!quiet)
          log?.(
            `${name} epoch ${e.epoch}: loss ${e.trainLoss.toFixed(4)}, test top-1 ${(100 * e.testTop1).toFixed(2)} %`,
          );
        await ft.onEpoch?.(e);
      },
    });
    head = result.head;
    const ev = await evaluateClassifier(model, head, test, {
      transform: testTransform,
      numClasses: options.numClasses,
      batchSize: ft.batchSize,
    });
    const labels = test.labels as Int32Array;
    const cm = confusionMatrix(
      labels,
      predictClasses(ev.scores, options.numClasses),
      options.numClasses,
    );
    const weights: Record<string, tf.Tensor> = { ...model.stateDict() };
    for (const [k, v] of Object.entries(head.stateDict())) weights[`head.${k}`] = v;
    writeSafetensors(join(out, `${name}.safetensors`), await readBackTensors(weights));
    return {
      epochs: result.epochs.length,
      last: result.last,
      bestTest: result.bestTest,
      evaluation: { top1: ev.top1, top5: ev.top5, meanPerClass: meanPerClassAccuracy(cm) },
      trainImages: train.length,
    };
  } finally {
    head?.dispose();
  }
}
