import * as tf from "@tensorflow/tfjs";
import { WASM_HEAP_LIMIT_BYTES, type WasmHeapPlan, heapEstimate, planWasmHeap } from "@sit/recipes";
import { type CliIO, UsageError, note } from "./io";
import { inputSize } from "./model";
import { createRecipe, networkOf } from "./recipes";

const gb = (bytes: number) => `${(bytes / 1e9).toFixed(1)} GB`;

/**
 * On wasm, check before training that a step of `config` at `batchSize` fits the 4 GiB heap
 * (`planWasmHeap`: a throwaway copy of the recipe, measured on small batches). When the step needs
 * it and `checkpointBlocks` was not given (`--checkpoint-blocks` or the config), recomputes the
 * fewest blocks with which it fits — each recomputed block runs its forward pass again in the
 * backward pass (≈ 0.25–0.3 CPU-seconds per ViT-Tiny/4 block at batch 64, measured in
 * tools/bench/results/cpu-2026-12-03) — and says so in one line; the choice is the config's
 * `backbone.checkpointBlocks` (true: all, or the first k), and so lands in run.json. Fails with the numbers and the flags that would fit when it cannot fit
 * at all — instead of a step that stalls for minutes with the heap full. Returns the config to
 * build; elsewhere (other backends) returns it unchanged.
 */
export async function fitWasmHeap(
  recipeName: string,
  config: Record<string, unknown>,
  batchSize: number,
  io: CliIO,
): Promise<Record<string, unknown>> {
  if (tf.getBackend() !== "wasm") return config;
  const backbone = (config.backbone ?? {}) as Record<string, unknown>;
  const given = backbone.checkpointBlocks;
  const explicit = typeof given === "boolean" || typeof given === "number";
  const plan = await planWasmHeap({
    create: () => {
      const recipe = createRecipe(recipeName, config);
      const vit = networkOf(recipe).backbone;
      return Object.assign(recipe, {
        imageShape: [inputSize(vit), inputSize(vit), vit.inChans] as [number, number, number],
        depth: vit.depth,
        setCheckpointBlocks: (on: boolean) => {
          vit.checkpointBlocks = on;
        },
      });
    },
    batchSize,
    limit: heapLimit(),
  });
  const depth = plan.depth ?? 1;
  // Blocks recomputed: as given, else the plan's fewest that fit.
  const k = explicit
    ? given === true
      ? depth
      : given === false
        ? 0
        : Math.min(depth, given as number)
    : plan.recomputedBlocks;
  const need = heapEstimate(plan, k);
  if (need > plan.limit - plan.used) throw new UsageError(tooBig(plan, k, explicit));
  if (k > 0 && !explicit)
    note(
      io,
      `[sit] a step at batch ${batchSize} needs ≈ ${gb(plan.withoutRecompute)} of the ${gb(plan.limit)} wasm heap: recomputing ${k === depth ? "all" : k} of ${depth} blocks in the backward pass (≈ ${gb(need)}; --checkpoint-blocks)`,
    );
  const checkpointBlocks = explicit ? given : k === depth ? true : k === 0 ? false : k;
  return { ...config, backbone: { ...backbone, checkpointBlocks } };
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

function tooBig(plan: WasmHeapPlan, k: number, explicit: boolean): string {
  const free = plan.limit - plan.used;
  const depth = plan.depth ?? 1;
  const estimate =
    k > 0
      ? `≈ ${gb(heapEstimate(plan, k))} with ${k === depth ? "block recomputation" : `${k} of ${depth} blocks recomputed`} (≈ ${gb(plan.withoutRecompute)} without)`
      : `≈ ${gb(plan.withoutRecompute)} without block recomputation (≈ ${gb(plan.withRecompute)} with it)`;
  const fixes: string[] = [];
  if (k < depth && plan.withRecompute <= free)
    fixes.push(explicit ? "drop checkpointBlocks from the config" : "--checkpoint-blocks");
  if (plan.maxBatchWithRecompute > 0 && plan.maxBatchWithRecompute < plan.batchSize)
    fixes.push(`--batch-size ${plan.maxBatchWithRecompute} with --checkpoint-blocks`);
  fixes.push("a smaller --embed-dim, --depth or --img-size", "--backend webgpu");
  return `--batch-size: a training step at batch ${plan.batchSize} needs ${estimate} of the wasm heap, which holds ${gb(free)} more (${gb(plan.limit)} at most); it fits with ${fixes.join(", or ")}`;
}
