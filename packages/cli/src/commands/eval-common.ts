import { appendFileSync, mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Pool } from "@sit/eval";
import { startBackend } from "../backend";
import { type DatasetKind, prepareDataset, skippedImages } from "../datasets";
import type { FeatureOptions } from "../features";
import { type CliIO, UsageError, note } from "../io";
import { type LoadedModel, loadModel, randomModel } from "../model";
import type { DataConfig, PretrainConfig } from "../run-config";

/** Where an evaluation command gets its network, data and output folder. */
export interface EvalSourceOptions {
  /** A checkpoint file or run folder of `sit pretrain`. */
  checkpoint?: string;
  /** Evaluate a randomly initialised network of this pretraining config's architecture instead (the baseline). */
  randomInit?: PretrainConfig;
  /** Student or teacher weights. */
  weights: "student" | "teacher";
  /** Dataset overrides (default: the run's). */
  data?: Partial<DataConfig>;
  backend?: string;
  /** Output folder of the results (default: the checkpoint's run folder, else `runs/eval`). */
  out?: string;
}

/** Feature settings of the frozen-feature protocols (k-NN, linear, few-shot). */
export interface EvalFeatureOptions {
  pool: Pool;
  batchSize: number;
  /** At most this many training images (evenly spaced). */
  trainLimit?: number;
  /** At most this many test images (evenly spaced). */
  testLimit?: number;
  /** Keep features in `<out>/feature-cache` and reuse them. */
  cache: boolean;
}

/** A model opened for evaluation, with its data kind and output folder. */
export interface EvalContext {
  model: LoadedModel;
  kind: DatasetKind;
  out: string;
  /** Short description of the weights for logs and results. */
  label: string;
  /** Dispose the model, and warn about any image files `--skip-corrupt` skipped. */
  close(): void;
}

/** Start the backend, then load the checkpoint (or build the random baseline) and resolve the data. */
export async function openEvalContext(o: EvalSourceOptions, io: CliIO): Promise<EvalContext> {
  if (!o.checkpoint === !o.randomInit)
    throw new UsageError(
      "--checkpoint / --random-init: expected exactly one (a checkpoint to evaluate, or --random-init with a --config for the baseline)",
    );
  await startBackend(o.backend, io);
  let model: LoadedModel;
  if (o.checkpoint) model = await loadModel(o.checkpoint, o.data);
  else {
    const cfg = o.randomInit as PretrainConfig;
    model = randomModel({ ...cfg, data: { ...cfg.data, ...definedOnly(o.data ?? {}) } });
  }
  const kind = await prepareDataset(model.run.data, io);
  const out = resolve(o.out ?? model.runDir ?? "runs/eval");
  mkdirSync(out, { recursive: true });
  const label =
    model.source === "random-init"
      ? `random init (${model.recipe.name} architecture, seed ${model.recipe.config.seed})`
      : `${model.recipe.name} ${o.weights} after ${model.step} steps`;
  note(io, `[sit] evaluating ${label} on ${kind.name}`);
  const close = () => {
    model.recipe.dispose();
    const skipped = skippedImages(kind);
    if (skipped) io.err(`warning: ${skipped}\n`);
  };
  return { model, kind, out, label, close };
}

/** The object without its undefined values. */
export function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Feature options for `splitFeatures`. */
export function featureOptions(
  ctx: EvalContext,
  o: EvalFeatureOptions,
  limit?: number,
): FeatureOptions {
  return {
    pool: o.pool,
    batchSize: o.batchSize,
    ...(limit !== undefined ? { limit } : {}),
    ...(o.cache ? { cacheDir: join(ctx.out, "feature-cache") } : {}),
  };
}

/** Append one JSON line to `<out>/<file>`; returns the path. */
export function appendResult(out: string, file: string, record: Record<string, unknown>): string {
  const path = join(out, file);
  appendFileSync(path, `${JSON.stringify({ time: new Date().toISOString(), ...record })}\n`);
  return path;
}
