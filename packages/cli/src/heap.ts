import * as tf from "@tensorflow/tfjs";
import { WASM_HEAP_LIMIT_BYTES, type WasmHeapPlan, planWasmHeap } from "@sit/recipes";
import { type CliIO, UsageError, note } from "./io";
import { inputSize } from "./model";
import { createRecipe, networkOf } from "./recipes";

const gb = (bytes: number) => `${(bytes / 1e9).toFixed(1)} GB`;

/**
 * On wasm, check before training that a step of `config` at `batchSize` fits the 4 GiB heap
 * (`planWasmHeap`: a throwaway copy of the recipe, measured on small batches). Turns block
 * recomputation on when the step needs it and `--checkpoint-blocks` was not given (one line says
 * so), and fails with the numbers and the flags that would fit when it cannot fit at all — instead
 * of a step that stalls for minutes with the heap full. Returns the config to build; elsewhere
 * (other backends) returns it unchanged.
 */
export async function fitWasmHeap(
  recipeName: string,
  config: Record<string, unknown>,
  batchSize: number,
  io: CliIO,
): Promise<Record<string, unknown>> {
  if (tf.getBackend() !== "wasm") return config;
  const backbone = (config.backbone ?? {}) as Record<string, unknown>;
  const explicit = typeof backbone.checkpointBlocks === "boolean";
  const plan = await planWasmHeap({
    create: () => {
      const recipe = createRecipe(recipeName, config);
      const vit = networkOf(recipe).backbone;
      return Object.assign(recipe, {
        imageShape: [inputSize(vit), inputSize(vit), vit.inChans] as [number, number, number],
        setCheckpointBlocks: (on: boolean) => {
          vit.checkpointBlocks = on;
        },
      });
    },
    batchSize,
    limit: heapLimit(),
  });
  const useRecompute = explicit ? backbone.checkpointBlocks === true : plan.checkpointBlocks;
  const need = useRecompute ? plan.withRecompute : plan.withoutRecompute;
  if (need > plan.limit - plan.used) throw new UsageError(tooBig(plan, useRecompute, explicit));
  if (useRecompute && !explicit)
    note(
      io,
      `[sit] a step at batch ${batchSize} needs ≈ ${gb(plan.withoutRecompute)} of the ${gb(plan.limit)} wasm heap: recomputing blocks in the backward pass (≈ ${gb(plan.withRecompute)}; --checkpoint-blocks)`,
    );
  return { ...config, backbone: { ...backbone, checkpointBlocks: useRecompute } };
}

/**
 * The heap size to plan for: `SIT_WASM_HEAP_LIMIT` (bytes, e.g. to keep headroom for other work
 * in the same process, or to rehearse a large run on a small one), else the wasm maximum.
 */
function heapLimit(): number {
  const env = process.env.SIT_WASM_HEAP_LIMIT;
  if (env === undefined || env === "") return WASM_HEAP_LIMIT_BYTES;
  const n = Number(env);
  if (!Number.isInteger(n) || n < 1 || n > WASM_HEAP_LIMIT_BYTES)
    throw new UsageError(
      `SIT_WASM_HEAP_LIMIT: expected a number of bytes from 1 to ${WASM_HEAP_LIMIT_BYTES}, got ${JSON.stringify(env)}`,
    );
  return n;
}

function tooBig(plan: WasmHeapPlan, recompute: boolean, explicit: boolean): string {
  const free = plan.limit - plan.used;
  const estimate = recompute
    ? `≈ ${gb(plan.withRecompute)} with block recomputation (≈ ${gb(plan.withoutRecompute)} without)`
    : `≈ ${gb(plan.withoutRecompute)} without block recomputation (≈ ${gb(plan.withRecompute)} with it)`;
  const fixes: string[] = [];
  if (!recompute && plan.withRecompute <= free)
    fixes.push(explicit ? "drop checkpointBlocks: false" : "--checkpoint-blocks");
  if (plan.maxBatchWithRecompute > 0 && plan.maxBatchWithRecompute < plan.batchSize)
    fixes.push(`--batch-size ${plan.maxBatchWithRecompute} with --checkpoint-blocks`);
  fixes.push("a smaller --embed-dim, --depth or --img-size", "--backend webgpu");
  return `--batch-size: a training step at batch ${plan.batchSize} needs ${estimate} of the wasm heap, which holds ${gb(free)} more (${gb(plan.limit)} at most); it fits with ${fixes.join(", or ")}`;
}
