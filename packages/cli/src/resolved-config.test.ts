import { readFileSync } from "node:fs";
import { join } from "node:path";
import { optimSchema, sitSchema } from "@sit/recipes";
import { describe, expect, it } from "vitest";
import { EXIT } from "./io";
import { sit, tempDir, tinyConfig, writeConfig } from "./test-support";

// The recipe's own defaults, read from its schema (not restated here).
const sitDefaults = sitSchema.parse({ optim: { stepsPerEpoch: 1 } });
const optimDefaults = optimSchema.parse({ stepsPerEpoch: 1 });

describe("the resolved config (--print-config, run.json)", () => {
  it("--print-config shows every default, the preset spelt out and the schedules' values", async () => {
    const dir = tempDir();
    const cfg = tinyConfig(join(dir, "run"));
    const c = cfg.config as { backbone: Record<string, unknown> };
    c.backbone = { imgSize: 28, patchSize: 7, preset: "tiny" }; // sizes from the preset
    const r = await sit("pretrain", "--config", writeConfig(dir, cfg), "--print-config");
    expect(r.code, r.err).toBe(EXIT.ok);
    const out = JSON.parse(r.out);
    // The preset's sizes, spelt out (a default the recipe fills).
    expect(out.config.backbone).toMatchObject({ preset: "tiny", embedDim: 192, depth: 12 });
    expect(out.config.backbone.numHeads).toBe(3);
    expect(out.config.backbone.inChans).toBe(1); // data.channels
    expect(out.config.backbone.dropPathRate).toBe(sitDefaults.backbone.dropPathRate);
    // Recipe defaults not in the file.
    expect(out.config.optim.minLr).toBe(optimDefaults.minLr);
    expect(out.config.optim.weightDecayEnd).toBe(optimDefaults.weightDecayEnd);
    expect(out.config.optim.clipGrad).toBe(optimDefaults.clipGrad);
    expect(out.config.optim).not.toHaveProperty("stepsPerEpoch");
    expect(out.config.gmml).toEqual(sitDefaults.gmml);
    expect(out.config.momentum).toEqual(sitDefaults.momentum);
    expect(out.config.temperature).toBe(sitDefaults.temperature);
    // Given values stay.
    expect(out.config.lambda).toBe(5);
    expect(out.config.optim.baseLr).toBe(0.02);
    // What the schedules come to: 64 images at batch 16 over 2 epochs.
    expect(out.derived).toEqual({
      images: 64,
      stepsPerEpoch: 4,
      scheduleSteps: 8,
      stopAtStep: 8,
      lr: { peak: (0.02 * 16) / 256, final: optimDefaults.minLr, warmupSteps: 0 },
      weightDecay: { start: optimDefaults.weightDecay, end: optimDefaults.weightDecayEnd },
      momentum: sitDefaults.momentum,
    });
    expect(r.err).not.toMatch(/warning/);
  });

  it("--checkpoint-blocks takes all, none or the number of blocks recomputed from the first", async () => {
    const dir = tempDir();
    const path = writeConfig(dir, tinyConfig(join(dir, "run")));
    const blocks = async (...flag: string[]) => {
      const r = await sit("pretrain", "--config", path, ...flag, "--print-config");
      expect(r.code, r.err).toBe(EXIT.ok);
      return JSON.parse(r.out).config.backbone.checkpointBlocks;
    };
    expect(await blocks("--checkpoint-blocks")).toBe(true);
    expect(await blocks("--checkpoint-blocks", "all")).toBe(true);
    expect(await blocks("--checkpoint-blocks", "none")).toBe(false);
    expect(await blocks("--checkpoint-blocks", "0")).toBe(false);
    expect(await blocks("--checkpoint-blocks", "1")).toBe(1);
    const bad = await sit(
      "pretrain",
      "--config",
      path,
      "--checkpoint-blocks",
      "half",
      "--print-config",
    );
    expect(bad.code).toBe(EXIT.usage);
    expect(bad.err).toMatch(
      /--checkpoint-blocks.*'half'.*expected all, none or a number of blocks/s,
    );
    // More blocks than the network has: the recipe's config check names the limit.
    const many = await sit(
      "pretrain",
      "--config",
      path,
      "--checkpoint-blocks",
      "9",
      "--steps",
      "1",
    );
    expect(many.code).not.toBe(EXIT.ok);
    expect(many.err).toMatch(/checkpointBlocks: expected an integer in \[0, \d+\], got 9/);
  });

  it("warns when the warm-up lasts as long as the run (and when --steps stops inside it)", async () => {
    const dir = tempDir();
    const path = writeConfig(dir, tinyConfig(join(dir, "run")));
    let r = await sit("pretrain", "--config", path, "--warmup-epochs", "2", "--print-config");
    expect(r.code).toBe(EXIT.ok);
    expect(r.err).toMatch(
      /warning: config\.optim\.warmupEpochs \(2\) ≥ config\.optim\.epochs \(2\): the learning rate only warms up/,
    );
    expect(JSON.parse(r.out).derived.lr.warmupSteps).toBe(7); // cut one short of the 8 steps
    r = await sit("pretrain", "--config", path, "--warmup-epochs", "1", "--print-config");
    expect(r.err).not.toMatch(/warning/);
    r = await sit(
      "pretrain",
      ...["--config", path, "--warmup-epochs", "1", "--steps", "3", "--print-config"],
    );
    expect(r.err).toMatch(
      /warning: train\.steps \(3\) ends the run within the learning-rate warm-up \(4 steps\)/,
    );
  });

  it("writes the resolved config to run.json, and a resume reads it back", async () => {
    const dir = tempDir();
    const out = join(dir, "run");
    const path = writeConfig(dir, tinyConfig(out));
    const first = await sit("pretrain", "--config", path, "--steps", "1", "-q");
    expect(first.code, first.err).toBe(EXIT.ok);
    const run = JSON.parse(readFileSync(join(out, "run.json"), "utf8"));
    expect(run.config.optim.minLr).toBe(optimDefaults.minLr);
    expect(run.config.momentum).toEqual(sitDefaults.momentum);
    expect(run.derived).toMatchObject({ images: 64, stepsPerEpoch: 4, stopAtStep: 1 });
    // --resume without --config starts from run.json, derived values included.
    const second = await sit("pretrain", "--out", out, "--resume", "--steps", "2", "-q");
    expect(second.code, second.err).toBe(EXIT.ok);
    expect(second.out).toMatch(/pretrain completed: 2 steps/);
    const again = JSON.parse(readFileSync(join(out, "run.json"), "utf8"));
    expect(again.config).toEqual(run.config);
    expect(again.derived.stopAtStep).toBe(2);
  }, 120_000);
});
