import * as tf from "@tensorflow/tfjs";
import { useWebgpu } from "@sit/testing";
import { afterAll, describe, expect, it } from "vitest";
import { checkSitStepParity } from "./testing/sit-step-parity";

afterAll(async () => {
  await tf.setBackend("cpu");
});

// Shader compilation on a CPU Vulkan driver takes seconds when idle, more under load.
const TIMEOUT = { timeout: 300_000 };

describe("SiT step parity with PyTorch on webgpu (sit_step.safetensors)", () => {
  it(
    "matches projections, losses, gradients, AdamW, EMA and BN statistics with the fused webgpu kernels",
    TIMEOUT,
    async (ctx) => {
      if (!(await useWebgpu(ctx))) return;
      const info = await tf.profile(() => checkSitStepParity(true));
      // The blocks (the teacher's as one stack, the student's as one taped stack each way), the
      // projection heads' BatchNorms and both losses ran fused.
      const names = info.kernels.map((k) => k.name);
      const fused = ["SitBatchNorm", "SitContrastiveLoss", "SitMaskedLoss"];
      const blocks = ["SitBlockStack", "SitBlockStackTrain", "SitBlockStackGrad"];
      for (const kernel of [...blocks, ...fused, ...fused.map((k) => `${k}Grad`)])
        expect(names).toContain(kernel);
    },
  );
});
