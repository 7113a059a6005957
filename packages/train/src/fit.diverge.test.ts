import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { afterEach, describe, expect, it } from "vitest";
import { listCheckpoints, loadCheckpointFile } from "./checkpoint";
import { fit } from "./fit-node";
import { NonFiniteLossError, NonFiniteStateError } from "./guards";
import { RegressionRecipe, regressionLoader } from "./test-support";

const tmp = () => mkdtempSync(join(tmpdir(), "sit-fit-diverge-"));
const latest = (dir: string) => readFileSync(join(dir, "latest"), "utf8").trim();

const recipes: RegressionRecipe[] = [];
function recipe(divergeFrom = Number.POSITIVE_INFINITY) {
  const r = new RegressionRecipe();
  r.divergeFrom = divergeFrom;
  recipes.push(r);
  return r;
}
afterEach(() => {
  for (const r of recipes.splice(0)) r.dispose();
});

async function largestWeight(path: string): Promise<number> {
  const ck = await loadCheckpointFile(path);
  const w = Math.max(...Array.from(ck.state.tensors.w.dataSync(), Math.abs));
  ck.dispose();
  return w;
}

/** Train with the learning rate at 1e30 from `divergeFrom` on, checkpointing every step. */
async function diverge(
  dir: string,
  divergeFrom: number,
  keepLast = 3,
): Promise<NonFiniteLossError> {
  const r = recipe(divergeFrom);
  const before = tf.memory().numTensors;
  const err = await fit(r, regressionLoader(4), {
    maxSteps: 10,
    sinks: [],
    checkpoint: { dir, everySteps: 1, keepLast },
  }).catch((e: unknown) => e);
  expect(tf.memory().numTensors).toBe(before);
  expect(err).toBeInstanceOf(NonFiniteLossError);
  return err as NonFiniteLossError;
}

describe("fit: a diverging run (--lr 1e30 --checkpoint-every 1)", () => {
  it("sets aside the checkpoint of the diverged update and points `latest` at the last good one", async () => {
    const dir = tmp();
    const err = await diverge(dir, 3);
    // Update 4 (at step 3) blew the weights up; the loss of step 4, computed with them, is the
    // first to show it, after checkpoint 4 was written.
    expect(err.step).toBe(4);
    const good = join(dir, "checkpoint-00000003.safetensors");
    const bad = join(dir, "checkpoint-00000004.diverged.safetensors");
    expect(err.checkpoints).toEqual({ dir, lastGood: good, setAside: bad });
    expect(err.message).toContain(`The last good checkpoint is ${good}`);
    expect(err.message).toContain(`moved to ${bad}`);
    expect(latest(dir)).toBe("checkpoint-00000003.safetensors");
    expect(listCheckpoints(dir).map((c) => c.step)).toEqual([2, 3]);
    expect(await largestWeight(bad)).toBeGreaterThan(1e20);
    expect(await largestWeight(good)).toBeLessThan(10);

    // Resuming the directory continues from step 3 with finite losses.
    const losses: number[] = [];
    const resumed = await fit(recipe(), regressionLoader(4), {
      maxSteps: 6,
      sinks: [],
      resume: true,
      checkpoint: { dir, everySteps: 1 },
      onStep: (e) => {
        losses.push(e.loss);
      },
    });
    expect(resumed.resumedFrom).toBe(good);
    expect(losses).toHaveLength(3);
    expect(losses.every(Number.isFinite)).toBe(true);
  });

  it("keeps the checkpoint before the newest even with keepLast 1, so one good checkpoint remains", async () => {
    const dir = tmp();
    const err = await diverge(dir, 3, 1);
    expect(err.checkpoints?.lastGood).toBe(join(dir, "checkpoint-00000003.safetensors"));
    expect(listCheckpoints(dir).map((c) => c.step)).toEqual([3]);
    expect(latest(dir)).toBe("checkpoint-00000003.safetensors");
  });

  it("removes `latest` when no checkpoint predates the divergence, and says so", async () => {
    const dir = tmp();
    const err = await diverge(dir, 0);
    expect(err.step).toBe(1);
    expect(err.message).toContain(`No checkpoint in ${dir} predates the divergence`);
    expect(existsSync(join(dir, "latest"))).toBe(false);
    expect(listCheckpoints(dir)).toEqual([]);
    const resumed = await fit(recipe(), regressionLoader(4), {
      maxSteps: 2,
      sinks: [],
      resume: true,
      checkpoint: { dir },
    });
    expect(resumed.resumedFrom).toBeUndefined();
  });

  it("without checkpoints, the message says none were configured", async () => {
    const err = await fit(recipe(0), regressionLoader(4), { maxSteps: 5, sinks: [] }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(NonFiniteLossError);
    expect((err as Error).message).toMatch(/non-finite loss at step 1: loss = (Infinity|NaN)/);
    expect((err as Error).message).toContain("no checkpoints were configured");
  });

  it("refuses to write a checkpoint whose weights are not finite (the end checkpoint has no next loss)", async () => {
    const dir = tmp();
    const r = recipe();
    const err = await fit(r, regressionLoader(4), {
      maxSteps: 4,
      sinks: [],
      checkpoint: { dir, everySteps: 3 },
      onStep: (e) => {
        if (e.step === 3) r.b.assign(tf.tensor1d([Number.NaN]));
      },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NonFiniteStateError);
    expect((err as Error).message).toMatch(/non-finite state after step 3: b\[0\] = NaN/);
    expect((err as Error).message).toContain(
      `the last good one is ${join(dir, "checkpoint-00000003.safetensors")}`,
    );
    expect(listCheckpoints(dir).map((c) => c.step)).toEqual([3]);
    expect(latest(dir)).toBe("checkpoint-00000003.safetensors");
  });
});

describe("fit: temp files of killed checkpoint writers", () => {
  it("removes them at start and on resume, with a warning", async () => {
    const dir = tmp();
    await fit(recipe(), regressionLoader(4), { maxSteps: 2, sinks: [], checkpoint: { dir } });
    const dead = spawnSync(process.execPath, ["-e", ""]).pid!;
    const orphans = [
      `.checkpoint-00000003.safetensors.${dead}.1733240000000.0.tmp`,
      `.latest.${dead}.1733240000001.1.tmp`,
    ];
    for (const name of orphans) writeFileSync(join(dir, name), Buffer.alloc(500_000));
    const warnings: string[] = [];
    const result = await fit(recipe(), regressionLoader(4), {
      maxSteps: 4,
      sinks: [],
      resume: true,
      checkpoint: { dir },
      onWarning: (m) => warnings.push(m),
    });
    expect(result.resumedFrom).toBe(join(dir, "checkpoint-00000002.safetensors"));
    expect(readdirSync(dir).filter((f) => f.endsWith(".tmp"))).toEqual([]);
    expect(warnings).toEqual([
      `removed 2 temporary file(s) (1.0 MB) left in ${dir} by interrupted checkpoint writes`,
    ]);
  });
});
