import * as tf from "@tensorflow/tfjs";
import { ShapeError, describeValue } from "@sit/core";
import {
  type TransformerBlockWeights,
  checkBlockArgs,
  fusableBlock,
  fusedBlockAttrs,
  fusedBlockInputs,
  transformerBlock,
} from "./transformer-block";
import { holdGradientTargets, holdVariables } from "./webgpu/block";
import type { BlockAttrs } from "./webgpu/block-encode";
import {
  BLOCK_STACK_KERNEL,
  type BlockStackAttrs,
  registerBlockStackKernel,
  stackInputName,
} from "./webgpu/block-stack";
import {
  BLOCK_STACK_TRAIN_KERNEL,
  type BlockStackTrainAttrs,
  registerBlockStackTrainKernels,
  stackGradientNames,
  stackSavedNames,
  stackWorkspaceFloats,
} from "./webgpu/block-stack-train";
import { runKernelSaving } from "./webgpu/tape";

/** Options of {@link transformerStack}. */
export interface TransformerStackOptions {
  /** Attention heads of every block (a divisor of D). */
  numHeads: number;
  /**
   * Per block, its two drop-path factors `[B]` (as {@link TransformerBlockOptions.dropScales}), or
   * null where it drops nothing. Absent: no drop path.
   */
  dropScales?: ([tf.Tensor, tf.Tensor] | null)[];
}

/**
 * Blocks in a row: `transformerBlock(…transformerBlock(x, blocks[0])…, blocks[k−1]).output`, with
 * each block's drop-path factors and no attention maps. When every block takes the fused webgpu
 * kernel with the same attributes (shapes, eps, biases), the blocks are ONE tfjs kernel call
 * instead of one per block: the same dispatches, less host time. Without a tape (an EMA teacher,
 * inference) that is block-stack.ts's forward; while a tape records (a student) it is
 * block-stack-train.ts's, with one backward kernel for all the blocks. Otherwise (another backend,
 * blocks that differ) one {@link transformerBlock} per block. Differentiable like a loop of them.
 */
export function transformerStack(
  x: tf.Tensor3D,
  blocks: TransformerBlockWeights[],
  options: TransformerStackOptions,
): tf.Tensor3D {
  if (!Array.isArray(blocks) || blocks.length === 0)
    throw new ShapeError(
      `transformerStack blocks: expected a non-empty array of block weights, got ${describeValue(blocks)}`,
    );
  const scales = options?.dropScales ?? blocks.map(() => null);
  if (!Array.isArray(scales) || scales.length !== blocks.length)
    throw new ShapeError(
      `transformerStack options.dropScales: expected one entry (two tensors or null) per block, ${blocks.length} in all, got ${describeValue(scales)}`,
    );
  const batch = x.shape[0];
  scales.forEach((s, i) => {
    const ok =
      s == null ||
      (Array.isArray(s) &&
        s.length === 2 &&
        s.every((t) => t instanceof tf.Tensor && t.rank === 1 && t.shape[0] === batch));
    if (!ok)
      throw new ShapeError(
        `transformerStack options.dropScales[${i}]: expected null or two tensors [${batch}] (block ${i}'s drop-path factors), got ${describeValue(s)}`,
      );
  });
  const o = { numHeads: options?.numHeads };
  // One transformerBlock per block (each checks its own arguments, drop-path factors included):
  // unless every block takes the fused kernel with the same attributes.
  const oneByOne = () =>
    tf.tidy(() =>
      blocks.reduce((y, w, i) => transformerBlock(y, w, { ...o, dropScales: scales[i] }).output, x),
    ) as tf.Tensor3D;
  const taped = (tf.engine() as unknown as { isTapeOn(): boolean }).isTapeOn();
  const scaledBlocks = scales.map((s) => s != null);
  // Without a tape, drop path is a train-mode forward outside a gradient (rare); with one, a single
  // block gains nothing from a stack: one by one.
  if (taped ? blocks.length === 1 : scaledBlocks.some(Boolean)) return oneByOne();
  const hidden = blocks.map((w, i) => checkBlockArgs(x, w, { ...o, dropScales: scales[i] }));
  const flags = { save: taped, scaled: false };
  const attrs = fusedBlockAttrs(x, blocks[0], o.numHeads, hidden[0], flags);
  const stacked =
    fusableBlock(x, hidden[0], o) &&
    blocks.every((w, i) => sameAttrs(fusedBlockAttrs(x, w, o.numHeads, hidden[i], flags), attrs)) &&
    (!taped || stackFits(attrs));
  if (!stacked) return oneByOne();
  const inputs: Record<string, tf.Tensor> = { x };
  blocks.forEach((w, i) => {
    const own = fusedBlockInputs(w);
    for (const name in own) inputs[stackInputName(i, name)] = own[name];
    const s = scales[i];
    if (s) [inputs[stackInputName(i, "s0")], inputs[stackInputName(i, "s1")]] = s;
  });
  if (taped) return trainStack(inputs, { ...attrs, depth: blocks.length, scaledBlocks });
  registerBlockStackKernel();
  const stackAttrs: BlockStackAttrs = { ...attrs, depth: blocks.length };
  return tf.engine().runKernel(BLOCK_STACK_KERNEL, inputs, stackAttrs as never) as tf.Tensor3D;
}

/** Whether a block's saved handle in the taped stack fits one WebGPU buffer. */
function stackFits(attrs: BlockAttrs): boolean {
  const limits = (tf.backend() as unknown as { device: { limits: { maxBufferSize: number } } })
    .device.limits;
  return stackWorkspaceFloats(attrs).total * 4 <= limits.maxBufferSize;
}

/** The taped stack: its handles and the inputs its backward reads saved without tape copies. */
function trainStack(inputs: Record<string, tf.Tensor>, attrs: BlockStackTrainAttrs): tf.Tensor3D {
  registerBlockStackTrainKernels();
  const names = stackSavedNames(attrs);
  const held = holdVariables(attrs, names, inputs);
  holdGradientTargets(attrs, stackGradientNames(attrs), inputs);
  const saved = names.filter((name) => !(name in held)).map((name) => inputs[name]);
  const outs = runKernelSaving(BLOCK_STACK_TRAIN_KERNEL, inputs, attrs, (o) => [
    ...o.slice(1),
    ...saved,
  ]);
  // The handles stay alive through the tape's saved handles.
  for (const h of outs.slice(1)) h.dispose();
  return outs[0] as tf.Tensor3D;
}

/** Whether two blocks' kernel attributes agree (every field a number, boolean or the shape). */
function sameAttrs(a: object, b: object): boolean {
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  return Object.keys(x).every((k) =>
    Array.isArray(x[k]) ? tf.util.arraysEqual(x[k] as number[], y[k] as number[]) : x[k] === y[k],
  );
}
