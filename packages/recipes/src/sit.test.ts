import { TEST_BACKENDS, withBackend } from "@sit/testing";
import { describe, it } from "vitest";
import { checkSitStepParity } from "./testing/sit-step-parity";

describe("SiT step parity with PyTorch (sit_step.safetensors)", () => {
  for (const backend of TEST_BACKENDS) {
    it(`matches projections, losses, gradients, AdamW, EMA and BN statistics on ${backend}`, async () => {
      await withBackend(backend, () => checkSitStepParity(false));
    });
  }
});
