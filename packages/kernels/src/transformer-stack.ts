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
import {
  BLOCK_STACK_KERNEL,
  type BlockStackAttrs,
  registerBlockStackKernel,
  stackInputName,
} from "./webgpu/block-stack";

/** Options of {@link transformerStack}. */
export interface TransformerStackOptions {
  /** Attention heads of every block (a divisor of D). */
  numHeads: number;
}

/**
 * Blocks in a row: `transformerBlock(…transformerBlock(x, blocks[0])…, blocks[k−1]).output`, with
 * no drop path and no attention maps. When no gradient tape records and every block takes the
 * fused webgpu kernel with the same attributes (shapes, eps, biases), it is ONE tfjs kernel call
 * (block-stack.ts) instead of one per block: the same dispatches, less host time per forward (an
 * EMA teacher's, inference's). Otherwise (a tape recording, another backend) one
 * {@link transformerBlock} per block, so it is differentiable like a loop of them.
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
  const o = { numHeads: options?.numHeads };
  // One transformerBlock per block (each checks its own arguments): under a tape, or unless every
  // block takes the fused kernel with the same attributes.
  const oneByOne = () =>
    tf.tidy(() => blocks.reduce((y, w) => transformerBlock(y, w, o).output, x)) as tf.Tensor3D;
  const engine = tf.engine() as unknown as { isTapeOn(): boolean };
  // (Checked first: a student's forward under the tape pays for no attribute comparison.)
  if (engine.isTapeOn()) return oneByOne();
  const hidden = blocks.map((w) => checkBlockArgs(x, w, o));
  const flags = { save: false, scaled: false };
  const attrs = fusedBlockAttrs(x, blocks[0], o.numHeads, hidden[0], flags);
  const stacked =
    fusableBlock(x, hidden[0], o) &&
    blocks.every((w, i) => sameAttrs(fusedBlockAttrs(x, w, o.numHeads, hidden[i], flags), attrs));
  if (!stacked) return oneByOne();
  registerBlockStackKernel();
  const inputs: Record<string, tf.Tensor> = { x };
  blocks.forEach((w, i) => {
    for (const [name, t] of Object.entries(fusedBlockInputs(w)))
      inputs[stackInputName(i, name)] = t;
  });
  const stackAttrs: BlockStackAttrs = { ...attrs, depth: blocks.length };
  return tf.engine().runKernel(BLOCK_STACK_KERNEL, inputs, stackAttrs as never) as tf.Tensor3D;
}

/** Whether two blocks' kernel attributes agree (every field a number, boolean or the shape). */
function sameAttrs(a: object, b: object): boolean {
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  return Object.keys(x).every((k) =>
    Array.isArray(x[k]) ? tf.util.arraysEqual(x[k] as number[], y[k] as number[]) : x[k] === y[k],
  );
}
