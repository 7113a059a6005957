import * as tf from "@tensorflow/tfjs";
import {
  GRAD_INPUTS,
  gradientTargets,
  heldInputs,
  newBlockGradients,
  savedInputNames,
} from "./block";
import { type BlockAttrs, dims, encodeBlockBackward, encodeBlockForward } from "./block-encode";
import { workspaceLayout } from "./block-layout";
import { stackInputName } from "./block-stack";
import { type View, alignFloats, viewOf } from "./encode";
import { callTable, encodePlanned } from "./encode-plan";
import {
  type WebGpuInternals,
  bufferHandle,
  newTensorInfo,
  scratchBuffer,
  webgpuInternals,
} from "./flat-buffers";
import { gemmSettingsKey } from "./gemm";
import { kernelArgs, registerWebgpuKernels } from "./program";
import { gradientFor } from "./write-back";

// Several transformer blocks in a row as ONE tfjs kernel per direction while a gradient tape
// records (a student's forward): the blocks' own dispatches (block-encode.ts), but one engine call
// and one tape node for all of them instead of one each way per block (what that saves:
// tools/bench/block-stack-host.ts). Each block keeps what its backward reads in a workspace of its
// own (a handle per block: one buffer for all would pass WebGPU's buffer size limit at large
// batches), with its input x after it: block i writes its output straight into block i+1's
// workspace. Drop path is per block (some blocks may have none).

export const BLOCK_STACK_TRAIN_KERNEL = "SitBlockStackTrain";
export const BLOCK_STACK_GRAD_KERNEL = "SitBlockStackGrad";

/** Attributes of the taped stack: every block's (save on), the depth and which blocks scale. */
export interface BlockStackTrainAttrs extends BlockAttrs {
  depth: number;
  /** Per block: whether it takes drop-path factors (inputs `b{i}.s0`, `b{i}.s1`). */
  scaledBlocks: boolean[];
}

/** Block `i`'s own attributes. */
function blockAttrs(attrs: BlockStackTrainAttrs, i: number): BlockAttrs {
  const { depth, scaledBlocks, ...common } = attrs;
  return { ...common, save: true, scaled: scaledBlocks[i] };
}

/** Floats of each block's saved handle: its workspace, then its input (blocks after the first). */
export function stackWorkspaceFloats(attrs: BlockAttrs): { workspace: number; total: number } {
  const dm = dims(attrs);
  const workspace = workspaceLayout(dm).total;
  return { workspace, total: workspace + alignFloats(dm.m * dm.d) };
}

/** The stack kernel's input name of block `i`'s saved handle. */
const wsName = (i: number) => stackInputName(i, "ws");

/** Views of block `i`'s workspace and input within its handle `h`. */
function handleViews(b: WebGpuInternals, h: tf.TensorInfo, attrs: BlockAttrs) {
  const { workspace, total } = stackWorkspaceFloats(attrs);
  const whole = viewOf(b, h, 0, total);
  const { m, d } = dims(attrs);
  return {
    ws: { buffer: whole.buffer, offset: 0, size: workspace } as View,
    x: { buffer: whole.buffer, offset: workspace, size: m * d } as View,
  };
}

/** Block `i`'s input named `name` among the stack's inputs. */
function blockInput(
  b: WebGpuInternals,
  inputs: Record<string, tf.TensorInfo>,
  i: number,
): (name: string) => View {
  return (name) => viewOf(b, inputs[stackInputName(i, name)]);
}

function stackTrainForward(args: unknown): tf.TensorInfo[] {
  const { inputs, backend, attrs: raw } = kernelArgs(args);
  const attrs = raw as unknown as BlockStackTrainAttrs;
  const b = webgpuInternals(backend);
  const { depth } = attrs;
  const y = newTensorInfo(b, inputs.x.shape);
  const { total } = stackWorkspaceFloats(attrs);
  const handles = Array.from({ length: depth }, () => bufferHandle(b, total));
  const { table, names } = callTable(b, inputs, [y, ...handles]);
  const signature = `SF|${JSON.stringify(attrs)}|${names}|${gemmSettingsKey()}`;
  encodePlanned(b, signature, table, () => {
    const views = handles.map((h) => handleViews(b, h, attrs));
    for (let i = 0; i < depth; i++) {
      const own = blockInput(b, inputs, i);
      const x = i === 0 ? viewOf(b, inputs.x) : views[i].x;
      const out = i === depth - 1 ? viewOf(b, y) : views[i + 1].x;
      encodeBlockForward(
        b,
        blockAttrs(attrs, i),
        (n) => (n === "x" ? x : own(n)),
        out,
        views[i].ws,
      );
    }
  });
  return [y, ...handles];
}

function stackBackward(args: unknown): tf.TensorInfo[] {
  const { inputs, backend, attrs: raw } = kernelArgs(args);
  const attrs = raw as unknown as BlockStackTrainAttrs;
  const b = webgpuInternals(backend);
  const { depth } = attrs;
  const { m, d } = dims(attrs);
  const dx = newTensorInfo(b, attrs.shape);
  // Each block's gradients. x's: block 0's is dx; the others' alternate between two halves of one
  // scratch buffer (block i writes half i % 2, which block i − 1 reads as its dy).
  const between = scratchBuffer(b, "block-stack-dy", 2 * alignFloats(m * d));
  const half = (k: number): View => ({
    ...viewOf(b, between, k * alignFloats(m * d)),
    size: m * d,
  });
  // A weight's gradient goes straight into the flat AdamW's gradient arena where it can
  // (write-back.ts's gradientFor).
  const targets = gradientTargets(raw);
  const grads = Array.from({ length: depth }, (_, i) =>
    newBlockGradients(
      b,
      blockAttrs(attrs, i),
      i === 0 ? viewOf(b, dx) : half(i % 2),
      (name, shape) => {
        const target = targets[stackInputName(i, name)];
        return target ? gradientFor(b, target) : newTensorInfo(b, shape);
      },
    ),
  );
  const outputs = [dx, ...grads.flatMap((g) => g.outputs)];
  const { table, names } = callTable(b, inputs, outputs);
  const signature = `SB|${JSON.stringify(attrs)}|${names}|${gemmSettingsKey()}`;
  encodePlanned(b, signature, table, () => {
    for (let i = depth - 1; i >= 0; i--) {
      const own = blockInput(b, inputs, i);
      const { ws, x: savedX } = handleViews(b, inputs[wsName(i)], attrs);
      const x = i === 0 ? viewOf(b, inputs.x) : savedX;
      const dy = i === depth - 1 ? viewOf(b, inputs.dy) : half((i + 1) % 2);
      encodeBlockBackward(
        b,
        blockAttrs(attrs, i),
        (n) => (n === "x" ? x : own(n)),
        dy,
        ws,
        grads[i].views,
      );
    }
  });
  return outputs;
}

/** The names, among the stack's inputs, of the weights whose gradients the backward returns. */
export function stackGradientNames(attrs: BlockStackTrainAttrs): string[] {
  const names: string[] = [];
  for (let i = 0; i < attrs.depth; i++)
    for (let e = 0; e < GRAD_INPUTS.length; e++) {
      const entry = GRAD_INPUTS[e];
      const name = entry[0];
      const flag = entry[1];
      if (name !== "x" && !(flag && !attrs[flag])) names.push(stackInputName(i, name));
    }
  return names;
}

/**
 * The names, among the stack's inputs, that block `i`'s backward reads (savedInputNames; a later
 * block's x is in its saved handle instead).
 */
export function stackSavedNames(attrs: BlockStackTrainAttrs): string[] {
  const names: string[] = [];
  for (let i = 0; i < attrs.depth; i++)
    for (const name of savedInputNames(blockAttrs(attrs, i)))
      if (name === "x") {
        if (i === 0) names.push("x");
      } else names.push(stackInputName(i, name));
  return names;
}

let registered = false;

/** Register the taped stack kernels and the forward's gradient with tfjs (once). */
export function registerBlockStackTrainKernels(): void {
  if (registered) return;
  registered = true;
  registerWebgpuKernels([
    [BLOCK_STACK_TRAIN_KERNEL, stackTrainForward],
    [BLOCK_STACK_GRAD_KERNEL, stackBackward],
  ]);
  tf.registerGradient({
    kernelName: BLOCK_STACK_TRAIN_KERNEL,
    gradFunc: (dys, saved, raw) => {
      const attrs = raw as unknown as BlockStackTrainAttrs;
      // saved: the blocks' handles, then the inputs the backward reads (stackSavedNames) that
      // were not held by reference (holdVariables).
      const held = heldInputs(raw);
      const inputs: Record<string, tf.Tensor> = { dy: (dys as tf.Tensor[])[0] };
      let k = 0;
      for (let i = 0; i < attrs.depth; i++) inputs[wsName(i)] = saved[k++];
      for (const name of stackSavedNames(attrs)) inputs[name] = held[name] ?? saved[k++];
      const outs = tf.engine().runKernel(BLOCK_STACK_GRAD_KERNEL, inputs, raw) as tf.Tensor[];
      const result: Record<string, () => tf.Tensor> = { x: () => outs[0] };
      let g = 1;
      for (let i = 0; i < attrs.depth; i++) {
        for (let e = 0; e < GRAD_INPUTS.length; e++) {
          const entry = GRAD_INPUTS[e];
          const name = entry[0];
          const flag = entry[1];
          if (name === "x" || (flag && !attrs[flag])) continue;
          const o = outs[g++];
          result[stackInputName(i, name)] = () => o;
        }
        // The drop-path factors are constants drawn on the host.
        if (attrs.scaledBlocks[i])
          for (const s of ["s0", "s1"])
            result[stackInputName(i, s)] = () => tf.zeros([attrs.shape[0]]);
      }
      return result;
    },
  });
}
