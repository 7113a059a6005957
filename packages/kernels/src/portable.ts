import { portableMultiHeadAttention, portablePackedSelfAttention } from "./attention";
import { portableGelu } from "./gelu";
import { portableLayerNorm } from "./layer-norm";
import { portableLinear } from "./linear";
import { portablePatchify, portableUnpatchify } from "./patchify";
import type { KernelSignatures } from "./registry";

/**
 * The portable (tfjs-ops) implementation of every operation, with the same signatures an override
 * has: the reference a backend kernel is tested against, and what an override can delegate to for
 * cases it does not handle.
 */
export const portableKernels: Readonly<KernelSignatures> = Object.freeze({
  linear: portableLinear,
  layerNorm: portableLayerNorm,
  gelu: portableGelu,
  multiHeadAttention: portableMultiHeadAttention,
  packedSelfAttention: portablePackedSelfAttention,
  patchify: portablePatchify,
  unpatchify: portableUnpatchify,
});
