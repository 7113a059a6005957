import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { PNG } from "pngjs";
import { afterAll, describe, expect, it } from "vitest";
import { main, parseStudyArgs } from "./fashion-mnist";

const tmp = mkdtempSync(join(tmpdir(), "sit-repro-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
// The Fashion-MNIST subset bundled with the repository (real IDX files, 600/100 images per class).
const data = fileURLToPath(new URL("../../data/fashion-mnist-subset", import.meta.url));
const args = [
  "--data",
  data,
  "--budget",
  "smoke",
  "--out",
  join(tmp, "out"),
  "--report",
  join(tmp, "report"),
  "--backend",
  "cpu",
  "--quiet",
];

describe("tools/repro/fashion-mnist.ts (smoke budget on the bundled subset)", () => {
  it("runs every method and evaluation, writes the table and the plot, and resumes", async () => {
    const md = await main(args);
    const state = JSON.parse(readFileSync(join(tmp, "out", "results.json"), "utf8"));
    const stages = Object.keys(state.stages);
    // 6 pretrainings + 7 × (k-NN + 2 linear probes + 2 fine-tunings).
    expect(stages).toHaveLength(6 + 7 * 5);
    expect(state.meta.complete).toBe(true);
    for (const [name, s] of Object.entries(state.stages) as [string, { result: unknown }][]) {
      if (name.endsWith("/pretrain")) expect(s.result).toMatchObject({ steps: 2 });
      else expect(s.result as number).toBeGreaterThanOrEqual(0);
    }
    for (const label of [
      "Random init.",
      "SiT",
      "GMML only",
      "MoCo v3",
      "MAE",
      "DINO",
      "SiT \\+ AttMask",
    ])
      expect(md).toMatch(new RegExp(`^\\| ${label} \\| \\d+\\.\\d \\|`, "m"));
    expect(md).toContain("fine-tune 20 %");

    const png = PNG.sync.read(readFileSync(join(tmp, "report", "fashion-mnist.png")));
    expect(png.width).toBeGreaterThan(800);
    const has = (r: number, g: number, b: number) => {
      for (let i = 0; i < png.data.length; i += 4)
        if (png.data[i] === r && png.data[i + 1] === g && png.data[i + 2] === b) return true;
      return false;
    };
    expect(has(214, 39, 40)).toBe(true); // SiT's line
    expect(has(44, 160, 44)).toBe(true); // MAE's line

    // Resuming: nothing is recomputed.
    await main(args);
    const again = JSON.parse(readFileSync(join(tmp, "out", "results.json"), "utf8"));
    expect(again.stages).toEqual(state.stages);
  });

  it("learning curve: evaluates each checkpoint, resumes, and takes methods added later", async () => {
    const out = join(tmp, "curve");
    const curveArgs = (methods: string) => [
      ...args.slice(0, 4),
      "--out",
      out,
      "--no-report",
      "--backend",
      "cpu",
      "--quiet",
      "--steps",
      "2",
      "--curve",
      "1,2",
      "--methods",
      methods,
      "--fractions",
      "1",
    ];
    await main(curveArgs("random,mae"));
    const first = JSON.parse(readFileSync(join(out, "results.json"), "utf8")).stages;
    for (const step of [1, 2])
      for (const stage of ["pretrain", "knn", "linear@0.1"])
        expect(first, `mae/${stage}@${step}`).toHaveProperty([`mae/${stage}@${step}`]);
    // The second segment resumed from the first one's checkpoint: 2 steps in all, not 1 + 2.
    const steps = readFileSync(join(out, "mae", "pretrain", "metrics.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l))
      .filter((e) => e.type === "step");
    expect(steps.map((e) => e.step)).toEqual([0, 1]);
    // A method added later runs alone; finished stages are not redone.
    await main(curveArgs("random,mae,gmml"));
    const second = JSON.parse(readFileSync(join(out, "results.json"), "utf8")).stages;
    for (const [name, rec] of Object.entries(first)) expect(second[name]).toEqual(rec);
    expect(second).toHaveProperty(["gmml/knn@2"]);
    expect(() => parseStudyArgs(["--data", data, "--steps", "4", "--curve", "1,3"])).toThrow(
      /--curve: expected increasing positive step counts ending at --steps \(4\), got "1,3"/,
    );
    expect(parseStudyArgs(["--data", data, "--budget", "curves"]).budget).toMatchObject({
      steps: 1600,
      batchSize: 64,
      pretrainImages: 4000,
      curve: [100, 200, 400, 800, 1600],
      curveFractions: [0.1],
    });
  });

  it("validates its flags", () => {
    expect(() => parseStudyArgs(["--budget", "smoke"])).toThrow(/--data: required/);
    expect(() => parseStudyArgs(["--data", tmp])).toThrow(/holds no Fashion-MNIST IDX files/);
    expect(() => parseStudyArgs(["--data", data, "--methods", "sit,byol"])).toThrow(/"byol"/);
    expect(() => parseStudyArgs(["--data", data, "--steps", "0"])).toThrow(/--steps/);
    expect(() => parseStudyArgs(["--data", data, "--finetune-lr", "0"])).toThrow(
      /--finetune-lr: expected a positive number, got "0"/,
    );
    expect(
      parseStudyArgs(["--data", data, "--finetune-warmup", "0", "--pretrain-lr", "1e-3"]).budget,
    ).toMatchObject({ finetuneWarmup: 0, pretrainLr: 1e-3 });
    expect(parseStudyArgs(["--data", data, "--report-only"]).reportOnly).toBe(true);
    expect(
      parseStudyArgs(["--data", data, "--budget", "gpu", "--depth", "8"]).budget,
    ).toMatchObject({
      depth: 8,
      embedDim: 192,
      patchSize: 4,
    });
  });
});
