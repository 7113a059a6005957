import * as tf from "@tensorflow/tfjs";
import type { FlatLayout } from "./flat-layout";

/** Where an optimiser group keeps its moments and does its arithmetic. */
export type UpdateMode = "host" | "device";

/**
 * One parameter group packed flat (see FlatLayout). Its moments live either in host memory
 * (`host`, for the cpu and wasm backends) or in tfjs Variables (`device`, for GPU backends).
 */
export interface FlatGroup {
  name: string;
  lr: number;
  lrScale: number;
  weightDecay: number;
  scheduleWeightDecay: boolean;
  layout: FlatLayout;
  /** Parameters in flat order. */
  vars: tf.Variable[];
  /** dataId of each Variable right after our last assign: if unchanged, our flat copy is current. */
  assignedIds: unknown[];
  host: { m: Float32Array; v: Float32Array; params: Float32Array | null } | null;
  device: {
    m: tf.Variable;
    v: tf.Variable;
    params: tf.Variable;
    segmentIds: tf.Tensor1D | null;
  } | null;
}

/** Hyper-parameters of one step. */
export interface StepHyper {
  beta1: number;
  beta2: number;
  eps: number;
  clipPerTensor: number | null;
  clipGlobalNorm: number | null;
  /** 1-based step number (bias correction). */
  step: number;
}

/** True when every Variable still holds the value we assigned last (nobody loaded new weights). */
export function flatCopyIsCurrent(g: FlatGroup): boolean {
  return (
    g.assignedIds.length === g.vars.length && g.vars.every((v, i) => v.dataId === g.assignedIds[i])
  );
}

export function recordAssigned(g: FlatGroup): void {
  g.assignedIds = g.vars.map((v) => v.dataId);
}

/** Move a group's moments to `mode` (creating zeros the first time). */
export function ensureStorage(g: FlatGroup, mode: UpdateMode): void {
  const n = g.layout.total;
  if (mode === "host" && !g.host) {
    const m = g.device ? Float32Array.from(g.device.m.dataSync()) : new Float32Array(n);
    const v = g.device ? Float32Array.from(g.device.v.dataSync()) : new Float32Array(n);
    disposeDevice(g);
    g.host = { m, v, params: null };
    g.assignedIds = [];
  } else if (mode === "device" && !g.device) {
    const m = tf.variable(g.host ? tf.tensor1d(g.host.m.slice()) : tf.zeros([n]), false);
    const v = tf.variable(g.host ? tf.tensor1d(g.host.v.slice()) : tf.zeros([n]), false);
    const params = tf.tidy(() => tf.variable(g.layout.flatten(g.vars), false));
    g.host = null;
    g.device = { m, v, params, segmentIds: null };
    recordAssigned(g);
  }
}

export function disposeDevice(g: FlatGroup): void {
  if (!g.device) return;
  const { m, v, params, segmentIds } = g.device;
  tf.dispose([m, v, params, ...(segmentIds ? [segmentIds] : [])]);
  g.device = null;
}
