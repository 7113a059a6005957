import * as tf from "@tensorflow/tfjs";
import { type FlatGroup, type StepHyper, disposeDevice, recordAssigned } from "./flat-group";
import type { FlatAdamWKernel, FlatLossScaleArgs } from "./fused-kernels";

// AdamW through a fused kernel registered by a backend package (registerFlatAdamWKernel): every
// parameter of every group sits in ONE flat buffer (groups in order, each in its layout's order),
// with the moments in two more, and the kernel updates all of them at once. The optimiser only
// hands over gradients and assigns the parameter tensors that the kernel returns.

/** The fused storage of an AdamW: flat parameters and moments over all groups. */
export interface FusedStorage {
  backend: string;
  plan: ReturnType<FlatAdamWKernel["prepare"]>;
  params: tf.Variable;
  m: tf.Variable;
  v: tf.Variable;
  vars: tf.Variable[];
  names: string[];
  shapes: number[][];
  /** Element offset of each tensor, plus the total at the end. */
  offsets: Int32Array;
  /** dataId of each Variable after our last assign (a different one means: re-read it). */
  assignedIds: unknown[];
}

/**
 * One flat float32 tensor of `parts` in a buffer of its own (the fused kernel writes it in place,
 * so it must not share data with any other tensor: `concat` of one tensor is a view of it).
 * Built with tensor ops, not host reads: synchronous reads fail on WebGPU under Node.
 */
function freshFlat(parts: tf.Tensor[]): tf.Tensor1D {
  const flat = parts.map((p) => p.reshape([-1]));
  return (flat.length === 1 ? tf.mul(flat[0], 1) : tf.concat(flat)) as tf.Tensor1D;
}

function groupMoments(g: FlatGroup, which: "m" | "v"): tf.Tensor {
  if (g.host) return tf.tensor1d(g.host[which]);
  if (g.device) return g.device[which];
  return tf.zeros([g.layout.total]);
}

/** Move the groups' moments (host or device, if any) into a new fused storage. */
export function createFused(
  groups: FlatGroup[],
  kernel: FlatAdamWKernel,
  backend: string,
): FusedStorage {
  const vars = groups.flatMap((g) => g.vars);
  const names = groups.flatMap((g) => [...g.layout.names]);
  const shapes = groups.flatMap((g) => g.layout.shapes.map((s) => [...s]));
  const offsets = new Int32Array(vars.length + 1);
  const groupOf = new Int32Array(vars.length);
  let k = 0;
  groups.forEach((g, gi) => {
    for (const size of g.layout.sizes) {
      offsets[k + 1] = offsets[k] + size;
      groupOf[k++] = gi;
    }
  });
  const total = offsets[vars.length];
  // Fresh buffers (uploaded from host arrays): the kernel writes them in place, so they must
  // not share data with any other tensor.
  const fresh = (parts: () => tf.Tensor[]): tf.Variable =>
    tf.tidy(() => tf.variable(freshFlat(parts()), false));
  const m = fresh(() => groups.map((g) => groupMoments(g, "m")));
  const v = fresh(() => groups.map((g) => groupMoments(g, "v")));
  // A kernel that updates the parameters' own buffers needs no flat copy of them.
  const params = fresh(() => [tf.zeros([kernel.inPlace ? 0 : total])]);
  for (const g of groups) {
    disposeDevice(g);
    g.host = null;
  }
  const plan = kernel.prepare({ offsets, groupOf, numGroups: groups.length });
  // No assignedIds yet: the first step reads every parameter into the flat copy.
  return { backend, plan, params, m, v, vars, names, shapes, offsets, assignedIds: [] };
}

/**
 * Dispose a fused storage, first (with `keepMoments`) handing its moments back to the groups as
 * per-group device storage (from which `ensureStorage` moves them on to the host if needed).
 */
export function releaseFused(f: FusedStorage, groups: FlatGroup[], keepMoments: boolean): void {
  if (keepMoments) {
    let offset = 0;
    for (const g of groups) {
      const n = g.layout.total;
      if (n > 0)
        tf.tidy(() => {
          g.device = {
            m: tf.variable(tf.slice(f.m, offset, n), false),
            v: tf.variable(tf.slice(f.v, offset, n), false),
            params: tf.variable(g.layout.flatten(g.vars), false),
            segmentIds: null,
          };
        });
      recordAssigned(g);
      offset += n;
    }
  }
  f.plan.dispose();
  tf.dispose([f.params, f.m, f.v]);
}

/**
 * One fused step; `grads[g][i]` belongs to `groups[g].vars[i]`. With `lossScale`, returns the
 * kernel's copy of the loss scale's state after the step (the caller disposes it).
 */
export function fusedStep(
  f: FusedStorage,
  groups: FlatGroup[],
  grads: tf.Tensor[][],
  h: StepHyper,
  lossScale?: FlatLossScaleArgs,
): tf.Tensor | undefined {
  const stale = f.vars.map((v, i) => v.dataId !== f.assignedIds[i]);
  const next = f.plan.step({
    params: f.vars,
    stale,
    grads: grads.flat(),
    flatParams: f.params as unknown as tf.Tensor1D,
    m: f.m as unknown as tf.Tensor1D,
    v: f.v as unknown as tf.Tensor1D,
    groups: groups.map((g) => ({ lr: g.lr, weightDecay: g.weightDecay })),
    beta1: h.beta1,
    beta2: h.beta2,
    eps: h.eps,
    step: h.step,
    clipPerTensor: h.clipPerTensor,
    clipGlobalNorm: h.clipGlobalNorm,
    ...(lossScale ? { lossScale } : {}),
  });
  const snapshot = lossScale ? (next.pop() ?? undefined) : undefined;
  next.forEach((t, i) => {
    if (!t) return; // updated in place
    f.vars[i].assign(t);
    t.dispose();
  });
  f.assignedIds = f.vars.map((v) => v.dataId);
  return snapshot;
}

/** The moments per parameter, in the parameters' shapes (new tensors). */
export function fusedMoments(f: FusedStorage): Record<string, tf.Tensor> {
  return tf.tidy(() => {
    const out: Record<string, tf.Tensor> = {};
    f.names.forEach((n, i) => {
      const [a, size] = [f.offsets[i], f.offsets[i + 1] - f.offsets[i]];
      out[`exp_avg.${n}`] = tf.slice(f.m, a, size).reshape(f.shapes[i]);
      out[`exp_avg_sq.${n}`] = tf.slice(f.v, a, size).reshape(f.shapes[i]);
    });
    return out;
  });
}

/** Overwrite the moments from per-parameter tensors (already checked by the caller). */
export function loadFusedMoments(f: FusedStorage, tensors: Record<string, tf.Tensor>): void {
  for (const [prefix, target] of [
    ["exp_avg", f.m],
    ["exp_avg_sq", f.v],
  ] as const) {
    tf.tidy(() => {
      target.assign(freshFlat(f.names.map((n) => tensors[`${prefix}.${n}`].cast("float32"))));
    });
  }
}
