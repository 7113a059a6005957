import { existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { EXIT } from "./io";
import { sit, tempDir, tinyConfig, writeConfig } from "./test-support";

describe("sit pretrain: the run folder and its warnings", () => {
  it("an --out that is a file (or under one) is a usage error naming it, before any work", async () => {
    const dir = tempDir();
    const file = join(dir, "notes.txt");
    writeFileSync(file, "x");
    let r = await sit("pretrain", "--config", writeConfig(dir, tinyConfig(file)));
    expect(r.code).toBe(EXIT.usage);
    expect(r.err).toContain(`--out: expected a folder, got the file ${file}`);
    expect(r.err).not.toMatch(/EEXIST|backend/);
    r = await sit("pretrain", "--config", writeConfig(dir, tinyConfig(join(file, "run"))));
    expect(r.code).toBe(EXIT.usage);
    expect(r.err).toContain(`--out: expected a folder, but ${file} on its path is a file`);
  });

  it("names baseLr when a config file gives 1e999 (JSON's Infinity)", async () => {
    const dir = tempDir();
    const path = writeConfig(dir, tinyConfig(join(dir, "run")));
    writeFileSync(path, readFileSync(path, "utf8").replace('"baseLr": 0.02', '"baseLr": 1e999'));
    const r = await sit("pretrain", "--config", path);
    expect(r.code).toBe(EXIT.usage);
    expect(r.err).toMatch(/config\.optim\.baseLr: Number must be finite/);
    expect(r.err).not.toMatch(/\bbase: /);
    // The CLI's own fields too: an infinite time budget named as train.maxMinutes, not maxSeconds.
    const budget = writeConfig(dir, tinyConfig(join(dir, "run")), "budget.json");
    writeFileSync(
      budget,
      readFileSync(budget, "utf8").replace('"keepLast": 2', '"keepLast": 2, "maxMinutes": 1e999'),
    );
    const b = await sit("pretrain", "--config", budget);
    expect(b.code).toBe(EXIT.usage);
    expect(b.err).toMatch(/config\.train\.maxMinutes: Number must be finite/);
  });

  it("a failed --resume leaves no run.json or metrics.jsonl behind", async () => {
    const dir = tempDir();
    const out = join(dir, "run");
    const config = writeConfig(dir, tinyConfig(out));
    const r = await sit("pretrain", "--config", config, "--resume", join(dir, "missing"), "-q");
    expect(r.code).toBe(EXIT.failure);
    expect(r.err).toMatch(/no checkpoint at/);
    expect(existsSync(out) ? readdirSync(out) : []).toEqual([]);
  });

  it("-q keeps the 'skipping unreadable checkpoint' warning; a resume that then fails keeps run.json as it was", async () => {
    const dir = tempDir();
    const out = join(dir, "run");
    const config = writeConfig(dir, tinyConfig(out));
    const first = await sit("pretrain", "--config", config, "--steps", "8", "-q");
    expect(first.code).toBe(EXIT.ok);
    const ckpts = join(out, "checkpoints");
    expect(readdirSync(ckpts).sort()).toEqual([
      "checkpoint-00000004.safetensors",
      "checkpoint-00000008.safetensors",
      "latest",
    ]);
    writeFileSync(join(ckpts, "checkpoint-00000008.safetensors"), "torn");
    const resumed = await sit("pretrain", "--out", out, "--resume", "--steps", "8", "-q");
    expect(resumed.code).toBe(EXIT.ok);
    expect(resumed.err).toMatch(
      /warning: skipping unreadable checkpoint .*checkpoint-00000008\.safetensors/,
    );
    expect(resumed.err).not.toMatch(/\[sit\]/); // progress and notes stay quiet

    // Every checkpoint unreadable: the resume fails before training, and the folder's files
    // (run.json, metrics.jsonl) are exactly as the last run left them.
    const before = ["run.json", "metrics.jsonl"].map((f) => readFileSync(join(out, f), "utf8"));
    for (const f of readdirSync(ckpts))
      if (f.endsWith(".safetensors")) writeFileSync(join(ckpts, f), "torn");
    const failed = await sit("pretrain", "--out", out, "--resume", "--epochs", "5", "-q");
    expect(failed.code).toBe(EXIT.failure);
    expect(failed.err).toMatch(/no readable checkpoint/);
    const after = ["run.json", "metrics.jsonl"].map((f) => readFileSync(join(out, f), "utf8"));
    expect(after).toEqual(before);
  });

  it("--lr 1e30 --checkpoint-every 1: the diverged checkpoint is set aside, never resumed from", async () => {
    const dir = tempDir();
    const out = join(dir, "run");
    const config = writeConfig(dir, tinyConfig(out));
    const args = ["--lr", "1e30", "--checkpoint-every", "1", "--steps", "6", "-q"];
    const r = await sit("pretrain", "--config", config, ...args);
    expect(r.code).toBe(EXIT.failure);
    const ckpts = join(out, "checkpoints");
    // Update 1 blew the weights up; the loss of step 1, computed with them, is the first NaN.
    expect(r.err).toMatch(/non-finite loss at step 1: /);
    expect(r.err).toContain(`moved to ${join(ckpts, "checkpoint-00000001.diverged.safetensors")}`);
    expect(r.err).toContain(`No checkpoint in ${ckpts} predates the divergence`);
    expect(readdirSync(ckpts)).toEqual(["checkpoint-00000001.diverged.safetensors"]);
  });
});
