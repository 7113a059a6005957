import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { EXIT } from "./io";
import { sit, tempDir, tinyConfig, writeConfig } from "./test-support";

const COMMANDS = [
  "pretrain",
  "reconstruct",
  "attention",
  "export",
  "info",
  "knn",
  "linear",
  "finetune",
  "fewshot",
];

describe("sit: help, version and usage errors", () => {
  it("prints help for the program and for every command with exit code 0", async () => {
    const top = await sit("--help");
    expect(top.code).toBe(EXIT.ok);
    for (const c of COMMANDS) expect(top.out).toContain(c);
    for (const c of COMMANDS) {
      const r = await sit(c, "--help");
      expect(r.code, c).toBe(EXIT.ok);
      expect(r.out, c).toContain(`Usage: sit ${c}`);
    }
    expect((await sit("--version")).out.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it("exits with 2 and says why on a wrong invocation", async () => {
    const cases: [string[], RegExp][] = [
      [[], /Usage: sit/],
      [["frobnicate"], /unknown command 'frobnicate'/],
      [["pretrain", "--bogus"], /unknown option '--bogus'/],
      [["pretrain", "--epochs", "zero"], /--epochs.*expected an integer ≥ 1/],
      [["pretrain", "--epochs", "0"], /expected an integer ≥ 1/],
      [["pretrain", "--recipe", "byol"], /--recipe.*Allowed choices are sit, gmml, mocov3, mae/],
      [["pretrain", "--channels", "2"], /Allowed choices are 1, 3/],
      [["pretrain", "--crop-scale", "0.5,0.2"], /0 < a ≤ b ≤ 1/],
      [["reconstruct"], /required option '--checkpoint <path>'/],
      [["knn", "--ks", "10,x"], /comma-separated integers/],
      [["knn"], /--checkpoint \/ --random-init: expected exactly one/],
      [["knn", "--checkpoint", "a", "--random-init"], /expected exactly one/],
      [
        ["knn", "--checkpoint", "nowhere", "--config", "c.json"],
        /--config: only used with --random-init/,
      ],
      [["info", "--backend", "cuda"], /Allowed choices are auto, tensorflow, webgpu, wasm, cpu/],
    ];
    for (const [argv, message] of cases) {
      const r = await sit(...argv);
      expect(r.code, argv.join(" ")).toBe(EXIT.usage);
      expect(r.err, argv.join(" ")).toMatch(message);
    }
  });

  it("refuses an invalid config file with exit 2 and names the field", async () => {
    const dir = tempDir();
    const bad = join(dir, "bad.json");
    writeFileSync(bad, "{ not json");
    let r = await sit("pretrain", "--config", bad, "--print-config");
    expect(r.code).toBe(EXIT.usage);
    expect(r.err).toMatch(/bad\.json is not valid JSON/);

    r = await sit("pretrain", "--config", join(dir, "missing.json"), "--print-config");
    expect(r.code).toBe(EXIT.usage);
    expect(r.err).toMatch(/file not found/);

    const unknown = writeConfig(dir, { ...tinyConfig(dir), epochz: 3 }, "unknown.json");
    r = await sit("pretrain", "--config", unknown, "--print-config");
    expect(r.code).toBe(EXIT.usage);
    expect(r.err).toMatch(/Unrecognized key\(s\) in object: 'epochz'/);

    const aug = writeConfig(
      dir,
      tinyConfig(dir, { data: { augment: { blurP: [1, 2] } } }),
      "aug.json",
    );
    r = await sit("pretrain", "--config", aug, "--print-config");
    expect(r.code).toBe(EXIT.usage);
    expect(r.err).toMatch(
      /config\.data\.augment\.blurP\.1: Number must be less than or equal to 1/,
    );

    const wrong = writeConfig(dir, tinyConfig(dir, { data: { channels: 2 } }), "wrong.json");
    r = await sit("pretrain", "--config", wrong, "--print-config");
    expect(r.code).toBe(EXIT.usage);
    expect(r.err).toMatch(/config\.data\.channels: expected 1 or 3/);
  });

  it("refuses a recipe config value when the recipe is built (field named), before any training", async () => {
    const dir = tempDir();
    const cfg = tinyConfig(join(dir, "run"));
    (cfg.config as { optim: Record<string, unknown> }).optim.baseLr = -1;
    const r = await sit("pretrain", "--config", writeConfig(dir, cfg));
    expect(r.code).toBe(EXIT.usage);
    expect(r.err).toMatch(/config\.optim\.baseLr: Number must be greater than 0/);
  });

  it("merges defaults < config file < flags, and only flags given on the command line override", async () => {
    const dir = tempDir();
    const path = writeConfig(dir, tinyConfig(join(dir, "run")));
    const r = await sit(
      "pretrain",
      "--config",
      path,
      "--epochs",
      "7",
      "--lambda",
      "2",
      "--channels",
      "3",
      "--print-config",
    );
    expect(r.code).toBe(EXIT.ok);
    const cfg = JSON.parse(r.out);
    expect(cfg.config.optim).toMatchObject({
      batchSize: 16,
      epochs: 7,
      warmupEpochs: 0,
      baseLr: 0.02,
    });
    expect(cfg.config.lambda).toBe(2);
    expect(cfg.data.channels).toBe(3);
    expect(cfg.data.limit).toBe(64); // from the file
    expect(cfg.data.interpolation).toBe("bicubic"); // default
    expect(cfg.train.tensorboard).toBe(true); // --no-tensorboard not given: the file's value stays
  });

  it("will not start over a run folder that holds checkpoints unless asked to resume", async () => {
    const dir = tempDir();
    const out = join(dir, "run");
    mkdirSync(join(out, "checkpoints"), { recursive: true });
    writeFileSync(join(out, "checkpoints", "checkpoint-00000004.safetensors"), "x");
    const r = await sit("pretrain", "--config", writeConfig(dir, tinyConfig(out)));
    expect(r.code).toBe(EXIT.usage);
    expect(r.err).toMatch(/already holds checkpoints; pass --resume/);
  });

  it("reports a failure (exit 1) for an unreadable checkpoint", async () => {
    const dir = tempDir();
    const file = join(dir, "checkpoint-00000001.safetensors");
    writeFileSync(file, "not a checkpoint");
    const r = await sit(
      "export",
      "--checkpoint",
      file,
      "--out",
      join(dir, "b.safetensors"),
      "--backend",
      "cpu",
    );
    expect(r.code).toBe(EXIT.failure);
    expect(r.err).toMatch(/IOError: .*checkpoint-00000001\.safetensors/);
  });
});
