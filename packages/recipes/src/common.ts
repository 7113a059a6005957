import * as tf from "@tensorflow/tfjs";
import { ConfigError, type Module, type Rng, ShapeError, cosineSchedule } from "@sit/core";
import { type MaskingStrategy, maskingResultToTensors } from "@sit/gmml";
import { applyPixelSources } from "@sit/kernels";
import type { OptimConfig } from "./config";

/** A batch of two augmented views (NHWC, normalised), as `@sit/data`'s two-view loader yields. */
export interface TwoViewBatch {
  views: tf.Tensor4D[];
}

/** A batch of one view per image. */
export interface ImageBatch {
  images: tf.Tensor4D;
}

/** Check that a batch holds two views of the same shape and return them. */
export function twoViews(batch: TwoViewBatch, name = "batch"): [tf.Tensor4D, tf.Tensor4D] {
  const views = (batch as TwoViewBatch | undefined)?.views;
  if (!Array.isArray(views) || views.length !== 2)
    throw new ConfigError(
      `${name}.views: expected an array of two NHWC tensors (the two augmented views), got ${Array.isArray(views) ? `${views.length} views` : String(views)}`,
    );
  const [a, b] = views;
  if (a.rank !== 4 || !tf.util.arraysEqual(a.shape, b.shape))
    throw new ShapeError(
      `${name}.views: expected two [B, H, W, C] tensors of one shape, got [${a.shape}] and [${b.shape}]`,
    );
  return [a, b];
}

/**
 * Gradients of `loss` with respect to the module's trainable parameters, keyed by dotted name,
 * plus the loss value and any extra tensors the function returns. The extras are kept past the
 * gradient scope with `tf.keep`: the caller must dispose them (an enclosing tidy does not).
 */
export function gradientsByName<E extends Record<string, tf.Tensor>>(
  module: Module,
  fn: () => { loss: tf.Scalar; extras?: E },
): { loss: tf.Scalar; grads: Record<string, tf.Tensor>; extras: E } {
  const named = module.namedParameters().filter(([, v]) => v.trainable);
  const byVar = new Map(named.map(([n, v]) => [v.name, n]));
  let extras = {} as E;
  const { value, grads } = tf.variableGrads(
    () => {
      const r = fn();
      extras = (r.extras ?? {}) as E;
      for (const t of Object.values(extras)) tf.keep(t);
      return r.loss;
    },
    named.map(([, v]) => v),
  );
  const out: Record<string, tf.Tensor> = {};
  for (const [k, g] of Object.entries(grads)) out[byVar.get(k) ?? k] = g;
  return { loss: value, grads: out, extras };
}

/** Backends whose tensors live in host memory: there the strategy corrupts the typed arrays. */
const HOST_BACKENDS = new Set(["cpu", "wasm"]);

/**
 * Corrupt each view with the strategy; returns corrupted views, `[B, H, W, 1]` pixel masks and,
 * when the strategy knows a patch size, `[B, N]` token masks (the caller disposes all of them).
 * Masks are always drawn on the CPU from `rng`. On device backends (webgpu, …), a strategy with
 * a `plan` (GMML) is applied where the views live — one dispatch per view on webgpu, through
 * `applyPixelSources` — instead of reading the views back; the numbers are the same.
 */
export function corruptViews(
  strategy: MaskingStrategy,
  views: tf.Tensor4D[],
  rng: Rng,
): { corrupted: tf.Tensor4D[]; masks: tf.Tensor4D[]; tokenMasks: tf.Tensor2D[] } {
  const corrupted: tf.Tensor4D[] = [];
  const masks: tf.Tensor4D[] = [];
  const tokenMasks: tf.Tensor2D[] = [];
  const onDevice = !HOST_BACKENDS.has(tf.getBackend()) && typeof strategy.plan === "function";
  for (const v of views) {
    if (onDevice && strategy.plan) {
      if (!(v instanceof tf.Tensor) || v.rank !== 4 || v.dtype !== "float32")
        throw new ShapeError(
          `views: expected float32 NHWC tensors [B, H, W, C], got ${v instanceof tf.Tensor ? `${v.dtype} [${v.shape}]` : String(v)}`,
        );
      const [B, H, W] = v.shape;
      const plan = strategy.plan(v.shape, rng);
      corrupted.push(applyPixelSources(v, plan.source, plan.noise));
      masks.push(tf.tensor4d(Float32Array.from(plan.pixelMask.data), [B, H, W, 1], "float32"));
      if (plan.tokenMask)
        tokenMasks.push(
          tf.tensor2d(Float32Array.from(plan.tokenMask.mask), plan.tokenMask.shape, "float32"),
        );
      continue;
    }
    // Masks are drawn on the CPU from the explicit Rng (same seed → same masks on every backend).
    const result = strategy.apply(
      { data: v.dataSync() as Float32Array, shape: v.shape as [number, number, number, number] },
      rng,
    );
    const t = maskingResultToTensors(result);
    corrupted.push(t.corrupted);
    masks.push(t.pixelMask);
    if (t.tokenMask) tokenMasks.push(t.tokenMask);
  }
  return { corrupted, masks, tokenMasks };
}

/** Per-iteration learning-rate and weight-decay schedules of SiT/DINO from an optimiser config. */
export interface OptimSchedules {
  lr: Float64Array;
  wd: Float64Array;
  totalSteps: number;
}

export function optimSchedules(o: OptimConfig): OptimSchedules {
  const totalSteps = o.epochs * o.stepsPerEpoch;
  const base = (o.baseLr * o.batchSize) / 256;
  const warmupSteps = Math.min(o.warmupEpochs * o.stepsPerEpoch, totalSteps - 1);
  return {
    lr: cosineSchedule({ base, final: o.minLr, totalSteps, warmupSteps, warmupStart: 0 }),
    wd: cosineSchedule({ base: o.weightDecay, final: o.weightDecayEnd, totalSteps }),
    totalSteps,
  };
}

/** The schedule value at `step`; past the planned end, the last value. */
export function at(schedule: Float64Array, step: number): number {
  return schedule[Math.min(step, schedule.length - 1)];
}

/** Mean of the loss tensor as a number, or NaN when not finite (the trainer's guard stops then). */
export function scalar(t: tf.Tensor): number {
  return (t.dataSync() as Float32Array)[0];
}

/** Library versions recorded in checkpoints. */
export const RECIPES_VERSION = "0.1.0";
