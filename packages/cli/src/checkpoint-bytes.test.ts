import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { recipeFromCheckpoint } from "@sit/recipes";
import { parseTrainCheckpoint, serializeTrainCheckpoint } from "@sit/train";
import * as tf from "@tensorflow/tfjs";
import { describe, expect, it } from "vitest";
import { EXIT } from "./io";
import { sit, tempDir, tinyConfig, writeConfig } from "./test-support";

// A web page holds a run in memory and downloads it as bytes; `sit pretrain --resume` must take
// those bytes as its own checkpoint. The page's side is played here with the main entries only
// (parseTrainCheckpoint, recipeFromCheckpoint, serializeTrainCheckpoint: what a page bundles).

const stepLosses = (path: string) =>
  new Map(
    readFileSync(path, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { type?: string; step?: number; loss?: number })
      .filter((l) => l.type === "step")
      .map((l) => [l.step as number, l.loss as number]),
  );

describe("checkpoints as bytes, between a page and `sit pretrain`", () => {
  it("a CLI checkpoint opened from bytes and saved back from memory is the same file, and resumes", async () => {
    const dir = tempDir();
    const cfg = tinyConfig(join(dir, "cli"));
    const config = writeConfig(dir, cfg);
    const first = await sit("pretrain", "--config", config, "--steps", "4", "--no-tensorboard");
    expect(first.code, first.err).toBe(EXIT.ok);
    const file = join(dir, "cli", "checkpoints", "checkpoint-00000004.safetensors");
    const bytes = new Uint8Array(readFileSync(file));

    // The page: open the upload, rebuild the recipe, and later save it again as a download.
    const opened = parseTrainCheckpoint(bytes, "upload.safetensors");
    const { progress, versions, recipe: name } = opened;
    const cli = opened.state.meta.cli;
    expect(cli).toMatchObject({ recipe: "sit", data: { dataset: "fashion-mnist-bundled" } });
    const { recipe } = await recipeFromCheckpoint(opened);
    const state = await recipe.saveState();
    const download = serializeTrainCheckpoint(
      { recipe: name, progress, versions },
      { tensors: state.tensors, meta: { ...state.meta, cli } },
    );
    for (const t of Object.values(state.tensors)) if (!(t instanceof tf.Variable)) t.dispose();
    recipe.dispose();
    expect(download.length).toBe(bytes.length);
    expect(Buffer.from(download).equals(Buffer.from(bytes))).toBe(true);

    // The CLI continues the download as it continues its own checkpoint.
    const page = join(dir, "page");
    mkdirSync(page);
    writeFileSync(join(page, "from-the-page.safetensors"), download);
    const fromPage = writeConfig(dir, { ...cfg, out: join(dir, "resumed") }, "resumed.json");
    const resumed = await sit(
      "pretrain",
      "--config",
      fromPage,
      "--resume",
      join(page, "from-the-page.safetensors"),
      "--steps",
      "6",
      "--no-tensorboard",
    );
    expect(resumed.code, resumed.err).toBe(EXIT.ok);
    const own = await sit("pretrain", "--out", join(dir, "cli"), "--resume", "--steps", "6");
    expect(own.code, own.err).toBe(EXIT.ok);
    const a = stepLosses(join(dir, "cli", "metrics.jsonl"));
    const b = stepLosses(join(dir, "resumed", "metrics.jsonl"));
    expect([...b.keys()]).toEqual([4, 5]);
    for (const s of [4, 5]) expect(b.get(s), `step ${s}`).toBeCloseTo(a.get(s) as number, 6);
  }, 300_000);
});
