import type * as tf from "@tensorflow/tfjs";
import { type MLPBlock, ProjectionHead, Rng, invalidArgument } from "@sit/core";
import { applyMlp } from "@sit/kernels";

/** {@link sitProjectionHead}'s defaults: SiT's `CLSHead` (hidden 4096, output 256). */
export const SIT_PROJECTION_DEFAULTS = { hidden: 4096, outDim: 256 } as const;

/** The blocks of SiT's `CLSHead(in, out)`: Linear→BN→ReLU→Linear→BN→GELU→Linear→BN(affine=False). */
export function sitProjectionBlocks(
  inDim: number,
  outDim: number = SIT_PROJECTION_DEFAULTS.outDim,
  hidden: number = SIT_PROJECTION_DEFAULTS.hidden,
): MLPBlock[] {
  return [
    { in: inDim, out: hidden, norm: "batch", activation: "relu" },
    { in: hidden, out: hidden, norm: "batch", activation: "gelu" },
    { in: hidden, out: outDim, norm: "batch_noaffine", activation: null },
  ];
}

/** Core's head run through `applyMlp`: one fused kernel per Linear and per BatchNorm on webgpu. */
class FusedProjectionHead extends ProjectionHead {
  override apply(x: tf.Tensor): tf.Tensor {
    return applyMlp(this.mlp, x);
  }
}

/**
 * SiT's projection head `CLSHead(inDim, outDim)` (hidden 4096 in the paper): parameter and buffer
 * names `mlp.0.*` (Linear), `mlp.1.*` (BN), `mlp.3.*`, `mlp.4.*`, `mlp.6.*`, `mlp.7.*` (BN without
 * affine), as in the SiT code. Linear weights trunc-normal (std 0.02), biases 0.
 *
 * Call as `sitProjectionHead(inDim, rng)`, `sitProjectionHead(inDim, rng, { outDim, hidden })` or
 * `sitProjectionHead(inDim, outDim, hidden, rng)`.
 */
export function sitProjectionHead(
  inDim: number,
  rng: Rng,
  options?: { outDim?: number; hidden?: number },
): ProjectionHead;
export function sitProjectionHead(
  inDim: number,
  outDim: number | undefined,
  hidden: number | undefined,
  rng: Rng,
): ProjectionHead;
export function sitProjectionHead(
  inDim: number,
  a: Rng | number | undefined,
  b?: number | { outDim?: number; hidden?: number },
  c?: Rng,
): ProjectionHead {
  const rng = a instanceof Rng ? a : c;
  if (!(rng instanceof Rng)) throw invalidArgument("rng", rng, "an Rng");
  const opts = a instanceof Rng ? ((b as { outDim?: number; hidden?: number }) ?? {}) : {};
  const outDim = a instanceof Rng ? opts.outDim : a;
  const hidden = a instanceof Rng ? opts.hidden : (b as number | undefined);
  return new FusedProjectionHead(sitProjectionBlocks(inDim, outDim, hidden), { rng });
}
