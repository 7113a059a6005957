import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createSiT, planWasmHeap } from "@sit/recipes";
import { withBackend } from "@sit/testing";
import { afterEach, describe, expect, it } from "vitest";
import { EXIT } from "./io";
import { sit, tempDir, tinyConfig, writeConfig } from "./test-support";

// `sit pretrain` on wasm plans the step's heap first (heap.ts). SIT_WASM_HEAP_LIMIT shrinks the
// heap it plans for, so that a small model stands in for one that needs recomputation.
const BACKBONE = { imgSize: 28, patchSize: 4, embedDim: 32, depth: 4, numHeads: 2 };
const BATCH = 32;

function config(out: string): Record<string, unknown> {
  const cfg = tinyConfig(out, { backend: "wasm" });
  const c = cfg.config as Record<string, Record<string, unknown>>;
  c.backbone = { ...BACKBONE };
  c.optim = { ...c.optim, batchSize: BATCH, epochs: 1 };
  cfg.train = { ...(cfg.train as object), steps: 1 };
  return cfg;
}

/** The library's plan for the same network, to place the simulated heap limit. */
async function libraryPlan() {
  return withBackend("wasm", () =>
    planWasmHeap({
      create: () => {
        const r = createSiT({
          backbone: { ...BACKBONE, inChans: 1 },
          projection: { hidden: 32, outDim: 16 },
          optim: { batchSize: BATCH, epochs: 1, stepsPerEpoch: 2 },
        });
        return Object.assign(r, {
          imageShape: [28, 28, 1] as [number, number, number],
          depth: r.student.backbone.depth,
          setCheckpointBlocks: (on: boolean) => {
            r.student.backbone.checkpointBlocks = on;
          },
        });
      },
      batchSize: BATCH,
    }),
  );
}

describe("sit pretrain on wasm: the step's heap", () => {
  afterEach(() => {
    delete process.env.SIT_WASM_HEAP_LIMIT;
  });

  it("recomputes the fewest blocks that fit by itself, saying so in one line and in run.json", async () => {
    const plan = await libraryPlan();
    expect(plan.withRecompute).toBeLessThan(plan.withoutRecompute);
    expect(plan.depth).toBe(4);
    const dir = tempDir();
    // Halfway between the two estimates: recomputing 2 of 4 blocks saves a third of the way from
    // none to all (one recomputed block saves nothing), 3 of 4 two thirds: 3 fit, 2 do not.
    process.env.SIT_WASM_HEAP_LIMIT = String(
      Math.round(plan.used + (plan.withRecompute + plan.withoutRecompute) / 2),
    );
    const r = await sit("pretrain", "--config", writeConfig(dir, config(join(dir, "run"))));
    expect(r.code, r.err).toBe(EXIT.ok);
    const lines = r.err.split("\n").filter((l) => l.includes("recomputing"));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /a step at batch 32 needs ≈ [\d.]+ GB .*: recomputing 3 of 4 blocks .*--checkpoint-blocks/,
    );
    const run = JSON.parse(readFileSync(join(dir, "run", "run.json"), "utf8"));
    expect(run.config.backbone.checkpointBlocks).toBe(3);
  });

  it("fails within seconds with the numbers and the flags that fit when nothing fits", async () => {
    const plan = await libraryPlan();
    const dir = tempDir();
    process.env.SIT_WASM_HEAP_LIMIT = String(Math.round(plan.used + plan.withRecompute / 2));
    const t0 = performance.now();
    const r = await sit("pretrain", "--config", writeConfig(dir, config(join(dir, "run"))));
    expect(performance.now() - t0).toBeLessThan(60_000);
    expect(r.code).toBe(EXIT.usage);
    expect(r.err).toMatch(/--batch-size: a training step at batch 32 needs ≈ [\d.]+ GB with block/);
    expect(r.err).toMatch(/--backend webgpu/);
  });

  it("names SIT_WASM_HEAP_LIMIT when it is not a number of bytes", async () => {
    const dir = tempDir();
    process.env.SIT_WASM_HEAP_LIMIT = "lots";
    const r = await sit("pretrain", "--config", writeConfig(dir, config(join(dir, "run"))));
    expect(r.code).toBe(EXIT.usage);
    expect(r.err).toMatch(/SIT_WASM_HEAP_LIMIT: expected a number of bytes .* got "lots"/);
  });
});
