import * as tf from "@tensorflow/tfjs";
import { type BlockAttrs, blockForward } from "./block";
import { webgpuInternals } from "./flat-buffers";
import { blockInputName } from "./indexed-names";
import { registerWebgpuKernels } from "./program";

// Several transformer blocks in a row as ONE tfjs kernel on webgpu, for forwards that no gradient
// tape records (an EMA teacher, inference, feature extraction): each tfjs kernel call costs host
// time (engine bookkeeping, profiling hooks), and a depth-12 ViT would make 12. Each block still
// encodes its own dispatches (block.ts's forward, unchanged); only the engine calls are shared.
// There is no gradient: transformerStack (transformer-stack.ts) runs it only with the tape off, and
// block-stack-train.ts's kernels while a tape records.

export const BLOCK_STACK_KERNEL = "SitBlockStack";

/** Attributes of the stack: those of every one of its blocks (the same for all), and the depth. */
export interface BlockStackAttrs extends BlockAttrs {
  depth: number;
}

/** The stack kernel's input name of block `i`'s input `name` (block.ts's names, e.g. `b0.ln1g`). */
export function stackInputName(i: number, name: string): string {
  return blockInputName(i, name);
}

/** The block index and block input name of a {@link stackInputName}; null for any other name. */
export function parseStackInputName(stackName: string): { block: number; name: string } | null {
  const dot = stackName.indexOf(".");
  if (stackName[0] !== "b" || dot < 2 || dot === stackName.length - 1) return null;
  const block = Number(stackName.slice(1, dot));
  return Number.isInteger(block) && block >= 0 ? { block, name: stackName.slice(dot + 1) } : null;
}

function blockStackForward(args: unknown): tf.TensorInfo {
  const { inputs, backend, attrs } = args as {
    inputs: Record<string, tf.TensorInfo>;
    backend: unknown;
    attrs: BlockStackAttrs;
  };
  if (attrs.save || attrs.scaled)
    throw new Error(
      `${BLOCK_STACK_KERNEL}: runs blocks without saving and without drop path (save ${attrs.save}, scaled ${attrs.scaled})`,
    );
  const b = webgpuInternals(backend);
  const { depth, ...blockAttrs } = attrs;
  // Each block's inputs (x first, then its own in the stack's order), in one pass over the names.
  let x = inputs.x;
  const perBlock: Record<string, tf.TensorInfo>[] = [];
  for (let i = 0; i < depth; i++) perBlock.push({ x });
  for (const stackName of Object.keys(inputs)) {
    const parsed = parseStackInputName(stackName);
    if (parsed && parsed.block < depth) perBlock[parsed.block][parsed.name] = inputs[stackName];
  }
  for (let i = 0; i < depth; i++) {
    const blockInputs = perBlock[i];
    blockInputs.x = x;
    const [y] = blockForward({ inputs: blockInputs, backend, attrs: blockAttrs });
    // The previous block's output is read by commands not yet submitted: tfjs releases its buffer
    // at the next submit (it is owned by the pending command buffer), not now.
    if (x !== inputs.x) b.disposeData(x.dataId);
    x = y;
  }
  // One output, not an array of one: tfjs's runKernel then returns the tensor itself.
  return x;
}

let registered = false;

/**
 * Register the stack kernel (once), and a gradient that fails loudly: the stack keeps no
 * intermediates, so it must never run while a tape records.
 */
export function registerBlockStackKernel(): void {
  if (registered) return;
  registered = true;
  registerWebgpuKernels([[BLOCK_STACK_KERNEL, blockStackForward]]);
  tf.registerGradient({
    kernelName: BLOCK_STACK_KERNEL,
    gradFunc: () => {
      throw new Error(
        `${BLOCK_STACK_KERNEL} has no gradient: it ran while a tape recorded (transformerStack runs SitBlockStackTrain then)`,
      );
    },
  });
}
