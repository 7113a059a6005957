import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { PNG } from "pngjs";
import { beforeAll, describe, expect, it } from "vitest";
import { EXIT } from "./io";
import { sit, tempDir, tinyConfig, writeConfig } from "./test-support";

type Line = Record<string, unknown> & { type?: string; step?: number; loss?: number };
const jsonl = (path: string): Line[] =>
  readFileSync(path, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Line);

const stepLosses = (path: string) =>
  new Map(
    jsonl(path)
      .filter((l) => l.type === "step")
      .map((l) => [l.step as number, l.loss as number]),
  );

function readPng(path: string): PNG {
  return PNG.sync.read(readFileSync(path));
}

// One tiny SiT run (3 epochs × 4 steps on 64 bundled Fashion-MNIST images) shared by the tests below.
describe("sit pretrain → resume → reconstruct / attention / knn / linear / fewshot / finetune", () => {
  const dir = tempDir();
  const straight = join(dir, "straight");
  const split = join(dir, "split");
  let configPath = "";

  beforeAll(async () => {
    const cfg = tinyConfig(straight);
    (cfg.config as { optim: { epochs: number } }).optim.epochs = 3;
    configPath = writeConfig(dir, cfg);
    const r = await sit(
      "pretrain",
      "--config",
      configPath,
      "--knn-every",
      "2",
      "--knn-samples",
      "100",
    );
    expect(r.err).not.toMatch(/error/);
    expect(r.code).toBe(EXIT.ok);
    expect(r.out).toMatch(/pretrain completed: 12 steps/);
  });

  it("writes the resolved config, keep-last checkpoints, JSONL metrics, TensorBoard events and monitor results", () => {
    const run = JSON.parse(readFileSync(join(straight, "run.json"), "utf8"));
    expect(run.config.lambda).toBe(5);
    expect(run.data.channels).toBe(1);
    const ckpts = readdirSync(join(straight, "checkpoints")).sort();
    // Epoch checkpoints at steps 4, 8, 12; the newest two are kept.
    expect(ckpts).toEqual([
      "checkpoint-00000008.safetensors",
      "checkpoint-00000012.safetensors",
      "latest",
    ]);
    const lines = jsonl(join(straight, "metrics.jsonl"));
    const steps = lines.filter((l) => l.type === "step");
    expect(steps.map((l) => l.step)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    for (const s of steps) {
      expect(Number.isFinite(s.loss)).toBe(true);
      const terms = s.terms as Record<string, number>;
      expect(Object.keys(terms).sort()).toEqual(["contrastive", "reconstruction"]);
      // L = Lc + λ·Lr with λ = 5 from the config.
      expect(s.loss).toBeCloseTo(terms.contrastive + 5 * terms.reconstruction, 3);
    }
    const monitor = lines.filter((l) => l.type === "monitor");
    expect(monitor.map((l) => l.step)).toEqual([7, 11]); // after epoch 2 and at the end
    for (const m of monitor) {
      const top1 = (m.metrics as Record<string, number>).knn_top1;
      expect(top1).toBeGreaterThanOrEqual(0);
      expect(top1).toBeLessThanOrEqual(1);
    }
    const tb = readdirSync(join(straight, "tb")).filter((f) =>
      f.startsWith("events.out.tfevents."),
    );
    expect(tb).toHaveLength(1);
    expect(readFileSync(join(straight, "tb", tb[0])).length).toBeGreaterThan(500);
  });

  it("resumes from a checkpoint and continues with the losses of the uninterrupted run", async () => {
    const cfg = tinyConfig(split);
    (cfg.config as { optim: { epochs: number } }).optim.epochs = 3;
    const path = writeConfig(dir, cfg, "split.json");
    const first = await sit("pretrain", "--config", path, "--steps", "6");
    expect(first.code).toBe(EXIT.ok);
    expect(first.out).toMatch(/pretrain completed: 6 steps/);
    // Resuming reads <out>/run.json; the flag raises the step limit.
    const second = await sit("pretrain", "--out", split, "--resume", "--steps", "12");
    expect(second.code).toBe(EXIT.ok);
    expect(second.out).toMatch(/pretrain completed: 12 steps/);
    const lines = jsonl(join(split, "metrics.jsonl"));
    const starts = lines.filter((l) => l.type === "start");
    expect(starts[1].startStep).toBe(6);
    expect(String(starts[1].resumedFrom)).toMatch(/checkpoint-00000006\.safetensors$/);
    const a = stepLosses(join(straight, "metrics.jsonl"));
    const b = stepLosses(join(split, "metrics.jsonl"));
    for (let s = 0; s < 12; s++) {
      const rel = Math.abs(a.get(s)! - b.get(s)!) / Math.abs(a.get(s)!);
      expect(rel, `step ${s}`).toBeLessThan(1e-5);
    }
  });

  it("draws reconstruction and attention PNGs from a checkpoint", async () => {
    const rec = join(dir, "rec.png");
    let r = await sit(
      "reconstruct",
      "--checkpoint",
      straight,
      "-o",
      rec,
      "-n",
      "3",
      "--backend",
      "cpu",
    );
    expect(r.code).toBe(EXIT.ok);
    expect(r.err).toMatch(/reconstruction of 3 test images \(weights after 12 steps/);
    const png = readPng(rec);
    // 3 columns × 3 rows of 28 px pictures enlarged 4×, plus titles (layout: pictures.test.ts).
    expect(png.width).toBeGreaterThan(3 * 112);
    expect(png.height).toBeGreaterThan(3 * 112);

    const att = join(dir, "att.png");
    r = await sit("attention", "--checkpoint", straight, "-o", att, "-n", "2", "--backend", "cpu");
    expect(r.code).toBe(EXIT.ok);
    const a = readPng(att);
    // image + 2 heads + their mean, titled, with a colour bar (layout: pictures.test.ts).
    expect(a.width).toBeGreaterThan(4 * 112);
    expect(a.height).toBeGreaterThan(2 * 112);
  });

  it("measures k-NN of the checkpoint and of the random initialisation, and appends JSONL results", async () => {
    const common = [
      "--train-limit",
      "200",
      "--test-limit",
      "100",
      "-k",
      "5,20",
      "--backend",
      "cpu",
    ];
    const trained = await sit("knn", "--checkpoint", straight, ...common);
    expect(trained.code).toBe(EXIT.ok);
    expect(trained.out).toMatch(/k-NN k=20: top-1 \d+\.\d\d %/);
    const random = await sit(
      "knn",
      "--random-init",
      "--config",
      configPath,
      ...common,
      "-o",
      join(dir, "random"),
    );
    expect(random.code).toBe(EXIT.ok);
    expect(random.out).toMatch(/random init \(sit architecture, seed 3\)/);
    const results = jsonl(join(straight, "eval.jsonl"));
    const knn = results.find((l) => l.command === "knn")!;
    expect(knn.step).toBe(12);
    expect(knn.trainRows).toBe(200);
    expect(knn.testRows).toBe(100);
    expect((knn.results as { k: number }[]).map((x) => x.k)).toEqual([5, 20]);
    // The features were cached: a second run reads them back and gives the same numbers.
    const again = await sit("knn", "--checkpoint", straight, ...common);
    expect(again.err).toMatch(/features train: 200 × 16 \(cache\)/);
    expect(again.out).toBe(trained.out);
  });

  it("runs the linear probe, few-shot episodes and fine-tuning on the checkpoint", async () => {
    const base = [
      "--checkpoint",
      straight,
      "--backend",
      "cpu",
      "--train-limit",
      "100",
      "--test-limit",
      "50",
    ];
    const lin = await sit("linear", ...base, "--epochs", "3", "--val-fraction", "0.2");
    expect(lin.code).toBe(EXIT.ok);
    expect(lin.out).toMatch(/linear probe: last epoch top-1/);
    expect(existsSync(join(straight, "linear-head.safetensors"))).toBe(true);
    expect(jsonl(join(straight, "linear.jsonl")).map((l) => l.epoch)).toEqual([1, 2, 3]);

    const few = await sit(
      "fewshot",
      ...base,
      "--episodes",
      "5",
      "--shots",
      "1,3",
      "--queries",
      "2",
    );
    expect(few.code).toBe(EXIT.ok);
    expect(few.out.match(/5-way \d-shot (prototype|logistic)/g)).toHaveLength(4);

    const ft = await sit(
      "finetune",
      ...base,
      "--epochs",
      "2",
      "--batch-size",
      "32",
      "--keep-last",
      "1",
    );
    expect(ft.code).toBe(EXIT.ok);
    expect(ft.out).toMatch(/fine-tuning: last epoch top-1/);
    expect(readdirSync(join(straight, "finetune"))).toEqual(["checkpoint-epoch-0002.safetensors"]);
    const kinds = jsonl(join(straight, "eval.jsonl")).map((l) => l.command);
    expect(kinds).toEqual(expect.arrayContaining(["knn", "linear", "fewshot", "finetune"]));
    expect(tf.memory().numTensors).toBeLessThan(100);
  });
});
