import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as tf from "@tensorflow/tfjs";
import { afterAll, describe, expect, it } from "vitest";
import { parseExampleArgs } from "./args";
import { readExampleConfig } from "./config";
import { PAPER_DATASETS } from "./datasets";
import { runExample } from "./run";
import { DATASET_WRITERS } from "./testing/dataset-files";

const tmp = mkdtempSync(join(tmpdir(), "sit-examples-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const examplesDir = fileURLToPath(new URL("../../", import.meta.url));

// Every paper example's --smoke run (its own config.json, tiny files in the dataset's real
// format): download skipped via --data, 2 SiT steps, k-NN, one fine-tuning epoch, evaluation.
describe("paper examples, --smoke", () => {
  for (const name of PAPER_DATASETS) {
    it(`${name}: every stage runs and results.json is written`, async () => {
      const data = join(tmp, name, "data");
      await DATASET_WRITERS[name](data, 8);
      const config = readExampleConfig(join(examplesDir, name, "config.json"));
      expect(config.dataset).toBe(name);
      const out = join(tmp, name, "out");
      const flags = parseExampleArgs(["--smoke", "--data", data, "--out", out]);
      const before = tf.memory().numTensors;
      const r = await runExample(config, flags, { quiet: true });
      expect(tf.memory().numTensors).toBe(before);
      expect(r.complete).toBe(true);
      expect(r.pretrain).toMatchObject({ steps: 2 });
      expect(r.knn?.testRows).toBe(8);
      expect(r.finetune?.epochs).toBe(1);
      for (const x of [
        r.knn!.top1,
        r.finetune!.evaluation.top1,
        r.finetune!.evaluation.meanPerClass,
      ])
        expect(x >= 0 && x <= 1).toBe(true);
      const file = JSON.parse(readFileSync(r.resultsPath, "utf8"));
      expect(Object.keys(file.stages).sort()).toEqual(["finetune", "knn", "pretrain"]);
      expect(file.meta.complete).toBe(true);
    });
  }

  it("a second run with the same output folder skips the finished stages", async () => {
    const out = join(tmp, "cifar10", "out");
    const before = JSON.parse(readFileSync(join(out, "results.json"), "utf8"));
    const config = readExampleConfig(join(examplesDir, "cifar10", "config.json"));
    const flags = parseExampleArgs([
      "--smoke",
      "--data",
      join(tmp, "cifar10", "data"),
      "--out",
      out,
    ]);
    const r = await runExample(config, flags, { quiet: true });
    const after = JSON.parse(readFileSync(r.resultsPath, "utf8"));
    expect(after.stages).toEqual(before.stages);
    // Another configuration in the same folder is refused rather than mixed in.
    const other = parseExampleArgs([
      "--smoke",
      "--data",
      join(tmp, "cifar10", "data"),
      "--out",
      out,
      "--seed",
      "5",
    ]);
    await expect(runExample(config, other, { quiet: true })).rejects.toThrow(
      /another configuration/,
    );
  });
});
