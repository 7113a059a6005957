import * as tf from "@tensorflow/tfjs";
import {
  type BlockAttrs,
  type BlockGradientViews,
  dims,
  encodeBlockBackward,
  encodeBlockForward,
} from "./block-encode";
import { SAVED_INPUTS, workspaceLayout } from "./block-layout";
import { type View, viewOf } from "./encode";
import { callTable, encodePlanned } from "./encode-plan";
import {
  type WebGpuInternals,
  bufferHandle,
  newTensorInfo,
  scratchBuffer,
  webgpuInternals,
} from "./flat-buffers";
import { gemmSettingsKey } from "./gemm";
import { registerWebgpuKernels } from "./program";

// The pre-norm transformer block as one tfjs kernel per direction on webgpu:
//   h = x + s0·proj(attention(qkv(LN1(x))));  y = h + s1·fc2(gelu(fc1(LN2(h))))
// (s0, s1: per-sample stochastic-depth factors, optional). The forward records 5 dispatches (each
// LayerNorm is the prologue of the GEMM after it), the backward 13 (split weight gradients
// included, where the device binds 13 storage buffers a shader), each encoded directly on
// tfjs's compute pass (encode.ts) — no tfjs engine call per inner operation. The forward's second
// output is a workspace holding what the backward reads
// (LN1(x), qkv, the attention output, h, LN2(h), fc1's pre-activation), saved for the tape by
// transformerBlock (a handle on its buffer, no tape copy: tape.ts); without a tape (inference, the first pass of a recomputed block) it is a
// temporary and the kernel returns y alone.

export const BLOCK_KERNEL = "SitBlock";
/** The block with stochastic-depth factors (two more inputs, saved for the backward). */
export const BLOCK_SCALED_KERNEL = "SitBlockScaled";
export const BLOCK_GRAD_KERNEL = "SitBlockGrad";

export type { BlockAttrs };

export function blockForward(args: unknown): tf.TensorInfo[] {
  const { inputs, backend, attrs } = args as {
    inputs: Record<string, tf.TensorInfo>;
    backend: unknown;
    attrs: BlockAttrs;
  };
  const b = webgpuInternals(backend);
  const t = inputs;
  const y = newTensorInfo(b, t.x.shape);
  const total = workspaceLayout(dims(attrs)).total;
  const ws = attrs.save ? bufferHandle(b, total) : scratchBuffer(b, "block-workspace", total);
  // Recorded once per signature, replayed after that (encode-plan.ts).
  const { table, names } = callTable(b, t, [y, ws]);
  const signature = `F|${JSON.stringify(attrs)}|${names}|${gemmSettingsKey()}`;
  encodePlanned(b, signature, table, () =>
    encodeBlockForward(
      b,
      attrs,
      (name) => viewOf(b, t[name]),
      viewOf(b, y),
      viewOf(b, ws, 0, total),
    ),
  );
  return attrs.save ? [y, ws] : [y];
}

/**
 * The gradient tensors of a block call, in GRAD_INPUTS' order (absent biases left out); with `x`,
 * x's gradient goes there instead of into a tensor of its own (a stack's inner blocks).
 */
export function newBlockGradients(
  b: WebGpuInternals,
  attrs: BlockAttrs,
  x?: View,
  allocate: (name: string, shape: number[]) => tf.TensorInfo = (_, shape) =>
    newTensorInfo(b, shape),
): { outputs: tf.TensorInfo[]; views: BlockGradientViews } {
  const outputs: tf.TensorInfo[] = [];
  const views = {} as Record<string, View | null>;
  for (let e = 0; e < GRAD_INPUTS.length; e++) {
    const entry = GRAD_INPUTS[e];
    const name = entry[0];
    const flag = entry[1];
    if (name === "x" && x) {
      views.x = x;
      continue;
    }
    if (flag && !attrs[flag]) {
      views[name] = null;
      continue;
    }
    const info = allocate(name, gradientShape(name, attrs));
    outputs.push(info);
    views[name] = viewOf(b, info);
  }
  return { outputs, views: views as unknown as BlockGradientViews };
}

/** The shape of the block input `name` (a GRAD_INPUTS name), so of its gradient. */
function gradientShape(name: string, attrs: BlockAttrs): number[] {
  const d = attrs.shape[2];
  const h = attrs.hidden;
  // A switch, not a table of every shape: this runs for each gradient of each block of a step.
  switch (name) {
    case "x":
      return attrs.shape;
    case "qkvW":
      return [d, 3 * d];
    case "qkvB":
      return [3 * d];
    case "projW":
      return [d, d];
    case "fc1W":
      return [d, h];
    case "fc1B":
      return [h];
    case "fc2W":
      return [h, d];
    default:
      return [d];
  }
}

function blockBackward(args: unknown): tf.TensorInfo[] {
  const { inputs, backend, attrs } = args as {
    inputs: Record<string, tf.TensorInfo>;
    backend: unknown;
    attrs: BlockAttrs;
  };
  const b = webgpuInternals(backend);
  const t = inputs;
  const { outputs, views } = newBlockGradients(b, attrs);
  // Recorded once per signature, replayed after that (encode-plan.ts).
  const { table, names } = callTable(b, t, outputs);
  const signature = `B|${JSON.stringify(attrs)}|${names}|${gemmSettingsKey()}`;
  const total = workspaceLayout(dims(attrs)).total;
  encodePlanned(b, signature, table, () =>
    encodeBlockBackward(
      b,
      attrs,
      (name) => viewOf(b, t[name]),
      viewOf(b, t.dy),
      viewOf(b, t.ws, 0, total),
      views,
    ),
  );
  return outputs;
}

/**
 * Input names of the block kernels whose gradients the backward kernel returns, in its order.
 * (The loops over it run for every block of every step: by index, with no destructuring, which
 * V8 runs as iterator calls until it optimises them.)
 */
export const GRAD_INPUTS: [string, keyof BlockAttrs | null][] = [
  ["x", null],
  ["ln1g", null],
  ["ln1b", null],
  ["qkvW", null],
  ["qkvB", "hasQkvBias"],
  ["projW", null],
  ["projB", "hasProjBias"],
  ["ln2g", null],
  ["ln2b", null],
  ["fc1W", null],
  ["fc1B", "hasFc1Bias"],
  ["fc2W", null],
  ["fc2B", "hasFc2Bias"],
];

/** The forward's inputs that the backward reads, in order (after the workspace). */
export function savedInputNames(attrs: { scaled: boolean }): string[] {
  return SAVED_INPUTS.filter((name) => attrs.scaled || (name !== "s0" && name !== "s1"));
}

/** Where a block's attributes carry the Variables its gradient reads by reference. */
const HELD = Symbol("heldInputs");

/**
 * Hand the gradient of a block call the inputs among `names` that are Variables by reference,
 * through its `attrs` (a symbol-keyed property: not in the plan signature's JSON): the tape then
 * saves only the others. A handle per saved tensor costs tfjs a tensor made and freed: 72 a
 * SiT step for the blocks' weights alone (6 per block). A Variable outlives the tape (tidy never
 * disposes it), and nothing assigns a weight between a forward and its backward (the optimiser
 * steps after the gradients), so the gradient reads the values the forward used. Returns the
 * held inputs.
 */
export function holdVariables(
  attrs: object,
  names: string[],
  inputs: Record<string, tf.Tensor>,
): Record<string, tf.Tensor> {
  const held: Record<string, tf.Tensor> = {};
  for (const name of names) if (inputs[name] instanceof tf.Variable) held[name] = inputs[name];
  Object.defineProperty(attrs, HELD, { value: held, enumerable: false });
  return held;
}

let registered = false;

/** Where a taped kernel's attributes carry the Variables whose gradients it returns. */
const TARGETS = Symbol("gradientTargets");

/**
 * Hand the gradient of a kernel call the inputs among `names` that are Variables, by reference
 * through its `attrs` (as {@link holdVariables}): the parameters whose gradients it returns, so
 * that it can write each into the flat AdamW's gradient arena (write-back.ts's `gradientFor`).
 */
export function holdGradientTargets(
  attrs: object,
  names: string[],
  inputs: Record<string, tf.Tensor>,
): void {
  const targets: Record<string, tf.Tensor> = {};
  for (const name of names) if (inputs[name] instanceof tf.Variable) targets[name] = inputs[name];
  Object.defineProperty(attrs, TARGETS, { value: targets, enumerable: false });
}

/** The Variables that {@link holdGradientTargets} attached to `attrs` (none: empty). */
export function gradientTargets(attrs: unknown): Record<string, tf.Tensor> {
  return (attrs as { [TARGETS]?: Record<string, tf.Tensor> })[TARGETS] ?? {};
}

/** The inputs that {@link holdVariables} attached to a kernel call's `attrs` (none: empty). */
export function heldInputs(attrs: unknown): Record<string, tf.Tensor> {
  return (attrs as { [HELD]?: Record<string, tf.Tensor> })[HELD] ?? {};
}

/** Register the block kernels and the forward's gradient with tfjs (once). */
export function registerBlockKernels(): void {
  if (registered) return;
  registered = true;
  registerWebgpuKernels([
    [BLOCK_KERNEL, blockForward],
    [BLOCK_SCALED_KERNEL, blockForward],
    [BLOCK_GRAD_KERNEL, blockBackward],
  ]);
  const gradFunc = (dys: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], raw: unknown) => {
    const attrs = raw as BlockAttrs;
    // saved: the workspace, then the inputs the backward reads (savedInputNames) that were not
    // held by reference (holdVariables).
    const held = heldInputs(raw);
    const inputs: Record<string, tf.Tensor> = { dy: (dys as tf.Tensor[])[0], ws: saved[0] };
    let k = 1;
    for (const name of savedInputNames(attrs)) inputs[name] = held[name] ?? saved[k++];
    const outs = tf.engine().runKernel(BLOCK_GRAD_KERNEL, inputs, attrs as never) as tf.Tensor[];
    const grads: Record<string, () => tf.Tensor> = {};
    let g = 0;
    for (let e = 0; e < GRAD_INPUTS.length; e++) {
      const entry = GRAD_INPUTS[e];
      const name = entry[0];
      const flag = entry[1];
      if (flag && !attrs[flag]) continue;
      const o = outs[g++];
      grads[name] = () => o;
    }
    // The drop-path factors are constants drawn on the host.
    if (attrs.scaled) {
      grads.s0 = () => tf.zeros([attrs.shape[0]]);
      grads.s1 = () => tf.zeros([attrs.shape[0]]);
    }
    return grads;
  };
  // The workspace and the inputs the backward reads are saved by transformerBlock, without tape
  // copies (tape.ts).
  for (const kernelName of [BLOCK_KERNEL, BLOCK_SCALED_KERNEL])
    tf.registerGradient({ kernelName, gradFunc });
}
