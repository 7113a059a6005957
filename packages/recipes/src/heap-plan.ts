import * as tf from "@tensorflow/tfjs";
import { invalidArgument } from "@sit/core";
import type { MaybePromise, StepResult } from "@sit/train";
import type { TwoViewBatch } from "./batches";

// The wasm heap is 32-bit: it holds at most 4 GiB, and it never shrinks. A training step that needs
// more does not fail cleanly: malloc inside tfjs's kernels fails deep in a step and the process
// stalls or aborts. So before a long run, measure what one step needs — on two small batches of
// a throwaway copy of the recipe, with and without block recomputation (activation memory grows
// linearly with the batch) — and choose, or refuse with numbers, within seconds.

/** The wasm heap's hard limit: 65,536 pages of 64 KiB. */
export const WASM_HEAP_LIMIT_BYTES = 2 ** 32;

/**
 * Live bytes that tfjs counts are not all the heap a step takes: malloc rounds and fragments, and
 * XNNPACK keeps packed weights and scratch buffers outside tfjs's accounting. Measured on SiT steps
 * (ViT-Tiny/4 at 32 px, batch 64, recomputation on: tfjs peak × 1.1–1.2 ≈ heap high-water).
 */
export const HEAP_OVERHEAD_FACTOR = 1.25;

/** Batch sizes of the two probe steps (BatchNorm in the projection heads needs more than one row). */
const PROBE_BATCHES = [2, 4] as const;

/** A recipe as the planner uses it: steps on two-view batches, block recomputation on or off. */
export interface ProbeRecipe {
  /** [height, width, channels] of one view. */
  readonly imageShape: [number, number, number];
  trainStep(batch: TwoViewBatch, step: number): MaybePromise<StepResult>;
  /** Turn recomputation of the transformer blocks in the backward pass on or off. */
  setCheckpointBlocks(on: boolean): void;
  /**
   * How many transformer blocks the network has. With it, {@link planWasmHeap} may recompute only
   * some of them (the first k, as `checkpointBlocks: k` does); without it, all or none.
   */
  readonly depth?: number;
  dispose(): void;
}

/** What one step of a recipe needs in bytes at a batch size: a fixed part plus a part per image. */
export interface StepBytes {
  /** The recipe's own state (parameters, moments, teacher…) plus the step's fixed transients. */
  fixed: number;
  /** Additional peak bytes per image of the batch. */
  perImage: number;
}

/** Peak bytes of one step at `batchSize` (tfjs's count, before {@link HEAP_OVERHEAD_FACTOR}). */
export function stepBytesAt(s: StepBytes, batchSize: number): number {
  return s.fixed + s.perImage * batchSize;
}

/**
 * Measure a recipe's step memory, without and with block recomputation: build it once with
 * `create`, take one step to allocate its state, then profile steps on two small batches in each
 * mode (tf.profile's peak bytes) and extrapolate linearly in the batch size. The recipe and the
 * batches are disposed.
 */
export async function measureStepBytes(
  create: () => ProbeRecipe,
): Promise<{ plain: StepBytes; recompute: StepBytes }> {
  const start = tf.memory().numBytes;
  const recipe = create();
  const { imageShape } = recipe;
  if (!Array.isArray(imageShape) || imageShape.length !== 3 || imageShape.some((d) => !(d > 0))) {
    recipe.dispose();
    throw invalidArgument("imageShape", imageShape, "[height, width, channels] of one view");
  }
  const batches = PROBE_BATCHES.map((b) => ({
    views: [0, 1].map(
      (i) => tf.randomNormal([b, ...imageShape], 0, 1, "float32", 7 + i) as tf.Tensor4D,
    ),
  }));
  try {
    let step = 0;
    await recipe.trainStep(batches[0], step++);
    const held = tf.memory().numBytes;
    const fit = async (on: boolean): Promise<StepBytes> => {
      recipe.setCheckpointBlocks(on);
      const peaks: number[] = [];
      for (const batch of batches) {
        const info = await tf.profile(async () => {
          await recipe.trainStep(batch, step++);
          return [];
        });
        peaks.push(info.peakBytes - held);
      }
      const [b0, b1] = PROBE_BATCHES;
      const perImage = Math.max(0, (peaks[1] - peaks[0]) / (b1 - b0));
      return { fixed: held - start + Math.max(0, peaks[0] - perImage * b0), perImage };
    };
    return { plain: await fit(false), recompute: await fit(true) };
  } finally {
    for (const b of batches) tf.dispose(b.views);
    recipe.dispose();
  }
}

/** The decision of {@link planWasmHeap}. */
export interface WasmHeapPlan {
  batchSize: number;
  /** Estimated heap high-water of a step without / with block recomputation (bytes). */
  withoutRecompute: number;
  withRecompute: number;
  /** Bytes the heap may hold in all (default {@link WASM_HEAP_LIMIT_BYTES}) and already holds. */
  limit: number;
  used: number;
  /** Recompute blocks in the backward pass (only when the step would not fit otherwise). */
  checkpointBlocks: boolean;
  /** The network's blocks (`ProbeRecipe.depth`), or null when the probe did not say. */
  depth: number | null;
  /**
   * How many blocks to recompute, from the first: the fewest with which the step fits (each one
   * costs its forward pass again in the backward; each one kept costs its activations in the
   * heap). 0 when nothing needs recomputing; `depth` (or 1 when depth is unknown) for all.
   */
  recomputedBlocks: number;
  /** Estimated heap high-water with {@link WasmHeapPlan.recomputedBlocks} recomputed (bytes). */
  estimate: number;
  fits: boolean;
  /** The largest batch that fits with recomputation (0 if none). */
  maxBatchWithRecompute: number;
}

/**
 * The heap estimate of a plan's step with the first `k` of its `depth` blocks recomputed. Every
 * block keeps the same activations, but a recomputed block holds its own again while its gradient
 * is taken: recomputing one block saves nothing, and each further one saves a block's activations
 * — the bytes fall linearly from {@link WasmHeapPlan.withoutRecompute} at k = 1 to
 * {@link WasmHeapPlan.withRecompute} at k = depth (measured: tfjs's peak of a ViT-Tiny/4 step at
 * batch 64 is 1.99, 3.60, 4.40 GB with 12, 10, 9 blocks recomputed; heap-plan.test.ts checks k = 2
 * of 4).
 */
export function heapEstimate(
  plan: Pick<WasmHeapPlan, "withoutRecompute" | "withRecompute" | "depth">,
  k: number,
): number {
  const depth = plan.depth ?? 1;
  if (!Number.isInteger(k) || k < 0 || k > depth)
    throw invalidArgument("k", k, `a whole number of blocks from 0 to ${depth}`);
  const { withoutRecompute: none, withRecompute: all } = plan;
  if (k === 0) return none;
  if (depth === 1) return all;
  return Math.ceil(all + ((none - all) * (depth - k)) / (depth - 1));
}

/**
 * Decide whether a step at `batchSize` fits the wasm heap, and how many blocks it must recompute:
 * measures the recipe with and without recomputation ({@link measureStepBytes}), compares the
 * estimates (× {@link HEAP_OVERHEAD_FACTOR}) with what is left of the heap, and picks the fewest
 * recomputed blocks that fit ({@link heapEstimate}; all or none when the probe has no `depth`).
 */
export async function planWasmHeap(args: {
  create: () => ProbeRecipe;
  batchSize: number;
  limit?: number;
}): Promise<WasmHeapPlan> {
  const { batchSize } = args;
  if (!Number.isInteger(batchSize) || batchSize < 1)
    throw invalidArgument("batchSize", batchSize, "a positive integer");
  const limit = args.limit ?? WASM_HEAP_LIMIT_BYTES;
  const used = tf.memory().numBytes;
  const probed: { depth: number | null } = { depth: null };
  const { plain, recompute } = await measureStepBytes(() => {
    const recipe = args.create();
    const depth = recipe.depth ?? null;
    if (depth !== null && (!Number.isInteger(depth) || depth < 1)) {
      recipe.dispose();
      throw invalidArgument("depth", depth, "the network's number of blocks, a positive integer");
    }
    probed.depth = depth;
    return recipe;
  });
  const { depth } = probed;
  const heap = (s: StepBytes, b: number) => Math.ceil(stepBytesAt(s, b) * HEAP_OVERHEAD_FACTOR);
  const withoutRecompute = heap(plain, batchSize);
  const withRecompute = heap(recompute, batchSize);
  const free = limit - used;
  const maxBatchWithRecompute =
    recompute.perImage > 0
      ? Math.max(
          0,
          Math.floor((free / HEAP_OVERHEAD_FACTOR - recompute.fixed) / recompute.perImage),
        )
      : Number.MAX_SAFE_INTEGER;
  const blocks = depth ?? 1;
  const sized = { withoutRecompute, withRecompute, depth };
  let recomputedBlocks = 0;
  while (recomputedBlocks < blocks && heapEstimate(sized, recomputedBlocks) > free)
    recomputedBlocks++;
  const estimate = heapEstimate(sized, recomputedBlocks);
  return {
    batchSize,
    withoutRecompute,
    withRecompute,
    limit,
    used,
    checkpointBlocks: recomputedBlocks > 0,
    depth,
    recomputedBlocks,
    estimate,
    fits: estimate <= free,
    maxBatchWithRecompute,
  };
}
