import { GMML_DEFAULTS } from "@sit/gmml";
import { CONTRASTIVE_LOSS_DEFAULTS, RECONSTRUCTION_LOSS_DEFAULTS } from "@sit/losses";
import { MOMENTUM_DEFAULTS } from "@sit/momentum";
import { VIT_DEFAULTS, VIT_PRESETS } from "@sit/vit";
import { describe, expect, it } from "vitest";
import { mocoV3Schema, resolveBackbone, sitSchema } from "./config";
import { SIT_PROJECTION_DEFAULTS } from "./sit-projection-head";

describe("config schemas", () => {
  it("take their defaults from the blocks' exported defaults", () => {
    const sit = sitSchema.parse({ optim: { stepsPerEpoch: 1 } });
    const { tokenThreshold: _, ...gmml } = GMML_DEFAULTS;
    expect(sit.gmml).toEqual(gmml);
    expect(sit.momentum).toEqual(MOMENTUM_DEFAULTS);
    expect(sit.projection).toEqual(SIT_PROJECTION_DEFAULTS);
    expect(sit.temperature).toBe(CONTRASTIVE_LOSS_DEFAULTS.temperature);
    expect(sit.reconstruction).toBe(RECONSTRUCTION_LOSS_DEFAULTS.type);
    const { dropPathRate: _rate, ...vit } = resolveBackbone(sit.backbone);
    expect(vit).toEqual({
      imgSize: VIT_DEFAULTS.imgSize,
      patchSize: VIT_DEFAULTS.patchSize,
      inChans: VIT_DEFAULTS.inChans,
      mlpRatio: VIT_DEFAULTS.mlpRatio,
      checkpointBlocks: VIT_DEFAULTS.checkpointBlocks,
      ...VIT_PRESETS.small,
    });
    const moco = mocoV3Schema.parse({ optim: { stepsPerEpoch: 1 } });
    expect(moco.projection).toEqual(SIT_PROJECTION_DEFAULTS);
    expect(resolveBackbone({ ...sit.backbone, preset: "tiny" }).embedDim).toBe(
      VIT_PRESETS.tiny.embedDim,
    );
  });
});
