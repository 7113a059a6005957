import type * as tf from "@tensorflow/tfjs";
import {
  type ResolvedDispatch,
  boundMirror,
  groupFor,
  issueDispatch,
  issueResolved,
  setEncodeRecorder,
  sizeOf,
} from "./encode";
import {
  type GpuBuffer,
  type WebGpuInternals,
  bufferOf,
  isPersistentBuffer,
  rawDispatchCount,
} from "./flat-buffers";
import { gpuProfiling } from "./gpu-profile";

// A fused kernel's dispatches, recorded once per kernel signature and replayed after that. A
// transformer block works out the same things on every call: its layouts, its GEMMs' variants,
// tiles and K splits, shader keys and uniforms, for the same dispatches over buffers that differ
// only by which tensors they hold. Measured on a SiT step (ViT-Tiny/4, batch 2, lavapipe), that
// work was most of the blocks' host time. A plan keeps each dispatch's pipeline, uniforms,
// workgroups and bindings, a binding being a buffer of the call's table (its inputs, outputs and
// workspace, in a fixed order) at an offset, or a buffer that lives as long as the backend
// (scratch). Replaying resolves the table's buffers and issues the dispatches, bind groups
// kept per buffers as encode does. A tensor's entry is where its values lie (encode.ts's
// `viewOf`): its own buffer, or its range of a flat buffer, so that one buffer may be the entry
// of several tensors, at offsets of their own.

/** The buffers of a call's tensors and where in them each tensor starts (in floats). */
export interface CallTable {
  buffers: GpuBuffer[];
  bases: number[];
  /** Floats of each tensor from its base: its size in a flat buffer, else the whole buffer (∞). */
  extents: number[];
}

interface PlannedView {
  /** Index in the call's table; -1 for `buffer`. */
  slot: number;
  buffer: GpuBuffer | null;
  offset: number;
  size: number;
}

interface PlannedDispatch extends Omit<ResolvedDispatch, "views"> {
  views: PlannedView[];
}

/**
 * A signature's dispatches, and the bind groups of its recent replays by their table's first
 * buffer. tfjs's pool hands a training loop the same buffers step after step (buffer-pool.ts), so
 * a call mostly replays over the table that the same call of the last step had (each of a
 * network's blocks has its own): comparing the tables then replaces resolving every dispatch's
 * bindings and looking up its bind group.
 */
interface Plan {
  dispatches: PlannedDispatch[];
  calls: Map<GpuBuffer, { table: CallTable; groups: unknown[] }>;
}

/** Bound on the tables remembered per plan (cleared past it). */
const CALLS_LIMIT = 64;

/** null: the signature's dispatches cannot be replayed (see {@link planOf}). */
const plans = new WeakMap<object, Map<string, Plan | null>>();
/** Bound on the plans kept per device (cleared past it, as encode.ts's caches). */
const PLAN_LIMIT = 1024;
let recording = false;

/** Whether two tables are the same buffers at the same bases. */
function sameTable(a: CallTable, b: CallTable): boolean {
  const n = a.buffers.length;
  if (b.buffers.length !== n) return false;
  for (let i = 0; i < n; i++)
    if (a.buffers[i] !== b.buffers[i] || a.bases[i] !== b.bases[i]) return false;
  return true;
}

/**
 * The plan of `recorded` over `table`, or null when a binding is neither in a tensor of the
 * table nor in a persistent buffer (a temporary: replay would bind a buffer since freed), or
 * when the body issued dispatches that `encode` did not see. undefined when two of the table's
 * tensors overlap in one buffer (the same tensor twice: ambiguous slots, try again at the next
 * call).
 */
function planOf(
  table: CallTable,
  recorded: ResolvedDispatch[],
  dispatched: number,
): Plan | null | undefined {
  if (dispatched !== recorded.length) return null;
  const slots = new Map<GpuBuffer, number[]>();
  const { buffers, bases, extents } = table;
  for (const [i, buffer] of buffers.entries()) {
    const same = slots.get(buffer) ?? [];
    for (const j of same)
      if (bases[i] < bases[j] + extents[j] && bases[j] < bases[i] + extents[i]) return undefined;
    same.push(i);
    slots.set(buffer, same);
  }
  const plan: PlannedDispatch[] = [];
  for (const d of recorded) {
    const views: PlannedView[] = [];
    for (const v of d.views) {
      const slot = slots
        .get(v.buffer)
        ?.find((i) => bases[i] <= v.offset && v.offset < bases[i] + extents[i]);
      if (slot === undefined && !isPersistentBuffer(v.buffer)) return null;
      views.push({
        slot: slot ?? -1,
        buffer: slot === undefined ? v.buffer : null,
        offset: slot === undefined ? v.offset : v.offset - bases[slot],
        size: v.size,
      });
    }
    plan.push({ ...d, views });
  }
  return { dispatches: plan, calls: new Map() };
}

/**
 * Run `body` (a kernel's encode calls) for a call with this `signature` (everything that decides
 * its dispatches: attributes, shapes, settings) and `table` (the buffers of the call's tensors,
 * each owned by the pending commands already: bufferOf) — recorded at the first call, replayed at
 * the next ones. The body must allocate nothing that it binds beyond the table and persistent
 * scratch, and must encode every dispatch through `encode` (checked when recording).
 */
export function encodePlanned(
  b: WebGpuInternals,
  signature: string,
  table: CallTable,
  body: () => void,
): void {
  let byDevice = plans.get(b.device);
  if (!byDevice) {
    byDevice = new Map();
    plans.set(b.device, byDevice);
  }
  const plan = byDevice.get(signature);
  if (plan) {
    replay(b, plan, table);
    return;
  }
  // Not replayable, nested in a recording, or under a GPU profile (its dispatches are not issued).
  if (plan === null || recording || gpuProfiling.recorder) {
    body();
    return;
  }
  const recorded: ResolvedDispatch[] = [];
  const before = rawDispatchCount();
  recording = true;
  setEncodeRecorder((d) => {
    recorded.push({ ...d, views: d.views.map((v) => ({ ...v })) });
  });
  try {
    body();
  } finally {
    recording = false;
    setEncodeRecorder(null);
  }
  const made = planOf(table, recorded, rawDispatchCount() - before);
  if (made === undefined) return;
  if (byDevice.size >= PLAN_LIMIT) byDevice.clear();
  byDevice.set(signature, made);
}

/** Issue `plan`'s dispatches over `table`, with the bind groups of its last call on that table. */
function replay(b: WebGpuInternals, plan: Plan, table: CallTable): void {
  const { dispatches } = plan;
  const profiling = gpuProfiling.recorder !== null;
  const memo = profiling ? undefined : plan.calls.get(table.buffers[0]);
  if (memo && sameTable(memo.table, table)) {
    for (let i = 0; i < dispatches.length; i++)
      issueDispatch(b, dispatches[i].p, memo.groups[i], dispatches[i].workgroups);
    return;
  }
  const groups: unknown[] = [];
  for (const d of dispatches) {
    const views = d.views.map((v) => ({
      buffer: v.buffer ?? table.buffers[v.slot],
      offset: v.buffer ? v.offset : table.bases[v.slot] + v.offset,
      size: v.size,
    }));
    if (profiling) {
      issueResolved(b, d.key, d.p, d.uniforms, views, d.workgroups);
      continue;
    }
    const group = groupFor(b, d.key, d.p, d.uniforms, views);
    groups.push(group);
    issueDispatch(b, d.p, group, d.workgroups);
  }
  if (profiling) return;
  if (plan.calls.size >= CALLS_LIMIT) plan.calls.clear();
  plan.calls.set(table.buffers[0], { table, groups });
}

/**
 * A call's table: where the values of its input tensors (in the record's order) and then of
 * `outputs` lie (encode.ts's `viewOf`, owned by the pending commands); and the part of its
 * signature that they give (the inputs' names, in that order).
 */
export function callTable(
  b: WebGpuInternals,
  inputs: Record<string, tf.TensorInfo>,
  outputs: tf.TensorInfo[],
): { table: CallTable; names: string } {
  // No object per tensor, and columns made at their size: a block stack's call has
  // ≈ 170 tensors, every step.
  const names = Object.keys(inputs);
  const n = names.length + outputs.length;
  const table: CallTable = { buffers: new Array(n), bases: new Array(n), extents: new Array(n) };
  for (let i = 0; i < n; i++) {
    const t = i < names.length ? inputs[names[i]] : outputs[i - names.length];
    const m = boundMirror(b, t);
    table.buffers[i] = bufferOf(b, m ? m.flat : t);
    table.bases[i] = m ? m.offset : 0;
    table.extents[i] = m ? sizeOf(t) : Number.POSITIVE_INFINITY;
  }
  return { table, names: names.join(",") };
}
