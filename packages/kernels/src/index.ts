export {
  registerKernelOverride,
  listKernelOverrides,
  type KernelName,
  type KernelSignatures,
  type AttentionResult,
  type ResolvedAttentionOptions,
} from "./registry";
export { linear } from "./linear";
export { layerNorm } from "./layer-norm";
export { gelu } from "./gelu";
export { fusedLinear, type FusedLinearOptions } from "./fused-linear";
export { applyMlp } from "./mlp";
export { lossSum } from "./loss-sum";
export { setWebgpuFusedHeads } from "./webgpu/heads-register";
export {
  transformerBlock,
  portableTransformerBlock,
  setWebgpuFusedBlock,
  type TransformerBlockWeights,
  type TransformerBlockOptions,
  type TransformerBlockResult,
  type NormWeights,
  type LinearWeights,
} from "./transformer-block";
export { transformerStack, type TransformerStackOptions } from "./transformer-stack";
export { multiHeadAttention, packedSelfAttention, type AttentionOptions } from "./attention";
export { patchify, unpatchify, unpatchifyAddBias } from "./patchify";
export { portableKernels } from "./portable";
export { wasmKernels, setWasmKernels } from "./wasm/register";
export { batchMatMulBatchLast } from "./wasm/attention";
export {
  withPrecision,
  checkPrecision,
  activePrecision,
  webgpuHasShaderF16,
  PRECISIONS,
  type Precision,
} from "./precision";
export {
  DynamicLossScaler,
  LOSS_SCALER_DEFAULTS,
  type LossScalerOptions,
  type LossScalerState,
  type ScaledGradients,
} from "./loss-scaler";
export { webgpuKernels, setWebgpuKernels } from "./webgpu/register";
export { webgpuTokenOps } from "./webgpu/tokens";
export { setWebgpuFlatKernels } from "./webgpu/flat-register";
export { setWebgpuWriteBackDeferral } from "./webgpu/write-back";
export { settleBufferPool } from "./webgpu/buffer-pool";
export { webgpuFlatAdamW, FLAT_ADAMW_KERNEL, flatAdamwStepValues } from "./webgpu/adamw";
export { webgpuFlatEma, FLAT_EMA_KERNEL, flatEmaStepValues } from "./webgpu/ema";
export { webgpuPixelSources, PIXEL_SOURCES_KERNEL } from "./webgpu/gmml";
export {
  StepCapture,
  type RecordedStep,
  copyOnDevice,
  recordStep,
} from "./webgpu/step-capture";
export type { RecordedCall, Recording } from "./webgpu/call-recorder";
