import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { EXIT } from "./io";
import { sit, tempDir, tinyConfig, writeConfig } from "./test-support";

// `sit pretrain --recipe dino` and `--masking attention` from the command line: flags parsed into
// the recipe's config, the right views drawn, a few steps trained.
describe("sit pretrain with DINO and attention-guided masking", () => {
  const dir = tempDir();
  const base = (out: string) => {
    const cfg = tinyConfig(out, { train: { tensorboard: false, keepLast: 1 } });
    const c = cfg.config as Record<string, unknown>;
    c.lambda = undefined;
    c.projection = undefined;
    return cfg;
  };

  it("--recipe dino --local-crops 2 trains DINO on multi-crop views", async () => {
    const out = join(dir, "dino");
    const cfg = base(out);
    cfg.recipe = undefined;
    (cfg.config as Record<string, unknown>).head = { hidden: 32, bottleneck: 8, outDim: 32 };
    const r = await sit(
      "pretrain",
      "--config",
      writeConfig(dir, cfg, "dino.json"),
      "--recipe",
      "dino",
      "--local-crops",
      "2",
      "--steps",
      "2",
    );
    expect(r.err).not.toMatch(/error/);
    expect(r.code).toBe(EXIT.ok);
    expect(r.out).toMatch(/pretrain completed: 2 steps/);
    const run = JSON.parse(readFileSync(join(out, "run.json"), "utf8"));
    expect(run.recipe).toBe("dino");
    expect(run.config.multiCrop.nLocal).toBe(2);
    const steps = readFileSync(join(out, "metrics.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l))
      .filter((e) => e.type === "step");
    expect(steps).toHaveLength(2);
    expect(steps.every((e) => Number.isFinite(e.terms.dino))).toBe(true);
  });

  it("--masking attention --attention-mode hint trains SiT with attention-guided masks", async () => {
    const out = join(dir, "attn");
    const cfg = tinyConfig(out, { train: { tensorboard: false, keepLast: 1 } });
    const r = await sit(
      "pretrain",
      "--config",
      writeConfig(dir, cfg, "attn.json"),
      "--masking",
      "attention",
      "--attention-mode",
      "hint",
      "--attention-groups",
      "pixel",
      "--steps",
      "2",
    );
    expect(r.err).not.toMatch(/error/);
    expect(r.code).toBe(EXIT.ok);
    const run = JSON.parse(readFileSync(join(out, "run.json"), "utf8"));
    expect(run.config.masking).toBe("attention");
    expect(run.config.attentionMask).toMatchObject({ mode: "hint", groups: "pixel" });
  });

  it("refuses a wrong masking or attention mode by flag", async () => {
    const r = await sit("pretrain", "--masking", "random", "--steps", "1");
    expect(r.code).not.toBe(EXIT.ok);
    expect(r.err).toMatch(/--masking/);
    const m = await sit("pretrain", "--attention-mode", "low", "--steps", "1");
    expect(m.err).toMatch(/--attention-mode/);
  });
});
