import * as tf from "@tensorflow/tfjs";
import { ConfigError, type Module, ShapeError, cosineSchedule } from "@sit/core";
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
