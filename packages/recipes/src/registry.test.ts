import { ConfigError } from "@sit/core";
import { VisionTransformer } from "@sit/vit";
import { describe, expect, it } from "vitest";
import { RECIPES, RECIPE_NAMES, type RecipeEntry, isRecipeName } from "./registry";

const tiny = {
  backbone: { imgSize: 8, patchSize: 4, embedDim: 8, depth: 1, numHeads: 2 },
  optim: { stepsPerEpoch: 1, epochs: 1 },
};
const configs: Record<string, object> = {
  sit: { ...tiny, projection: { hidden: 8, outDim: 4 } },
  gmml: tiny,
  mocov3: { ...tiny, projection: { hidden: 8, outDim: 4 }, predictorHidden: 8 },
  mae: { ...tiny, decoder: { embedDim: 8, depth: 1, numHeads: 2 } },
  dino: { ...tiny, head: { hidden: 8, bottleneck: 4, outDim: 16 }, multiCrop: { nLocal: 2 } },
};

describe("RECIPES", () => {
  it("builds every recipe by name, with its name, and refuses a wrong field by name", () => {
    expect(RECIPE_NAMES).toEqual(["sit", "gmml", "mocov3", "mae", "dino"]);
    expect(isRecipeName("mae")).toBe(true);
    expect(isRecipeName("toString")).toBe(false);
    for (const name of RECIPE_NAMES) {
      const entry: RecipeEntry = RECIPES[name];
      const recipe = entry.create(configs[name]);
      expect(recipe.name).toBe(name);
      expect(entry.schema.safeParse(configs[name]).success).toBe(true);
      recipe.dispose();
      expect(() => entry.create({ ...configs[name], lambda: "x", bogus: 1 })).toThrow(ConfigError);
    }
  });

  it("network() and backbone() find the student's and the teacher's ViT; no teacher is an error", () => {
    const teachers: Record<string, boolean> = {
      sit: true,
      gmml: false,
      mocov3: true,
      mae: false,
      dino: true,
    };
    for (const name of RECIPE_NAMES) {
      const entry: RecipeEntry = RECIPES[name];
      const recipe = entry.create(configs[name]);
      expect(recipe.network()).toBe(recipe.student);
      const student = recipe.backbone();
      expect(student).toBeInstanceOf(VisionTransformer);
      expect(recipe.student.namedParameters().map(([, v]) => v)).toContain(
        student.namedParameters()[0][1],
      );
      if (teachers[name]) {
        const teacher = recipe.backbone("teacher");
        expect(teacher).not.toBe(student);
        expect(recipe.network("teacher")).toBe(recipe.teacherModule);
        expect((recipe.teacherModule?.namedParameters() ?? []).map(([, v]) => v)).toContain(
          teacher.namedParameters()[0][1],
        );
      } else {
        expect(() => recipe.backbone("teacher")).toThrow(/has no teacher/);
      }
      recipe.dispose();
    }
  });
});
