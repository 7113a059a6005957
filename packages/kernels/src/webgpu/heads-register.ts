import * as tf from "@tensorflow/tfjs";
import {
  type ContrastiveLossKernel,
  registerContrastiveLossKernel,
  registerMaskedLossKernel,
} from "@sit/core";
import { webgpuContrastiveLoss, webgpuContrastiveLossOfViews } from "./contrastive";
import { webgpuMaskedLoss } from "./masked-loss";
import { webgpuKernelsEnabled } from "./register";

// The switch of the fused webgpu kernels outside the backbone: the projection head's BatchNorm
// kernels (taken by `applyMlp`, which asks `webgpuFusedHeadsEnabled`), the MoCo-v3 loss and the
// masked reconstruction loss (plugged into @sit/losses through @sit/core's seams while on).

let removeLosses: (() => void) | null = null;

/** The MoCo-v3 loss on the seam: pairs, or SiT's two views stacked (`crossViews`). */
const contrastiveLoss: ContrastiveLossKernel = Object.assign(
  (pairs: [tf.Tensor2D, tf.Tensor2D][], temperature: number, eps: number) =>
    webgpuContrastiveLoss(pairs, temperature, eps),
  { crossViews: webgpuContrastiveLossOfViews },
);

/**
 * Turn the fused webgpu heads and losses on (the state after importing this package) or off; off,
 * `applyMlp` runs the MLP's own layers and @sit/losses its portable losses on webgpu too (for
 * comparisons and benchmarks). Idempotent.
 */
export function setWebgpuFusedHeads(enabled: boolean): void {
  if (enabled && !removeLosses) {
    const removers = [
      registerContrastiveLossKernel("webgpu", contrastiveLoss),
      registerMaskedLossKernel("webgpu", webgpuMaskedLoss),
    ];
    removeLosses = () => {
      for (const r of removers) r();
    };
  } else if (!enabled && removeLosses) {
    removeLosses();
    removeLosses = null;
  }
}

/** Whether the fused webgpu heads are on and the webgpu backend with this package's kernels is active. */
export function webgpuFusedHeadsEnabled(): boolean {
  return removeLosses !== null && tf.getBackend() === "webgpu" && webgpuKernelsEnabled();
}

setWebgpuFusedHeads(true);
