import { FINE_TUNE_DEFAULTS, KNN_DEFAULTS } from "@sit/eval";
import { optimSchema } from "@sit/recipes";
import { describe, expect, it } from "vitest";
import { defaultPreset, defaultText, formatDefault, pretrainDefault } from "./help";
import { sit } from "./test-support";

describe("help texts", () => {
  it("read each default from the schema that applies it", () => {
    const optim = optimSchema.parse({ stepsPerEpoch: 1 });
    expect(pretrainDefault("config.optim.baseLr")).toBe(optim.baseLr);
    expect(pretrainDefault("data.cropScale")).toEqual([0.2, 1]);
    expect(pretrainDefault("train.keepLast")).toBe(3);
    expect(defaultPreset()).toBe("small");
    expect(formatDefault(5e-4)).toBe("5e-4");
    expect(formatDefault([0.2, 1])).toBe("0.2,1");
    expect(() => defaultText("config.optim.nothing")).toThrow(/no default/);
  });

  it("sit pretrain --help shows them", async () => {
    const r = await sit("pretrain", "--help");
    // Commander wraps long lines: compare without the line breaks.
    const help = r.out.replace(/\s+/g, " ");
    expect(help).toContain("base learning rate, scaled by batch/256 (default 5e-4)");
    expect(help).toContain("ViT size preset (default small)");
    expect(help).toContain("RandomResizedCrop area range (default 0.2,1)");
    expect(help).toContain("sit | gmml | mocov3 | mae | dino (default sit)");
    expect(help).toContain("images per step (default 64)");
  });

  it("the evaluation commands show the evaluation protocols' defaults", async () => {
    const finetune = (await sit("finetune", "--help")).out.replace(/\s+/g, " ");
    expect(finetune).toContain(
      `final learning rate (default ${formatDefault(FINE_TUNE_DEFAULTS.minLr)})`,
    );
    expect(finetune).toContain(`epochs (default: ${FINE_TUNE_DEFAULTS.epochs})`);
    const knn = (await sit("knn", "--help")).out.replace(/\s+/g, " ");
    expect(knn).toContain(`vote temperature (default: ${KNN_DEFAULTS.temperature})`);
  });
});
