import { PARTIAL_ROWS, layerNormGradWgsl } from "./block-wgsl";
import { type Scalars, type View, encode, foldGroups } from "./encode";
import type { WebGpuInternals } from "./flat-buffers";
import type { StridedSum } from "./strided-sums";
import { rowThreads } from "./reductions";

// LayerNorm's backward as directly encoded dispatches (encode.ts), shared by the fused block
// (two LayerNorms, each residual, finished with its weight gradients) and the LayerNorm kernel
// (the ViT's final norm): one pass per LayerNorm for dX and the partial sums of dγ, dβ, then the
// finishing sums (strided-sums.ts), in one dispatch with the kernel's others.

/** Floats of one LayerNorm's partial sums for `m` rows of `d`. */
export function partialsSize(m: number, d: number): number {
  return Math.ceil(m / PARTIAL_ROWS) * 2 * d;
}

/**
 * dX = (R +) LN′ᵀ·dY, and the partial column sums of (dγ, dβ) into `partials`
 * ({@link partialsSize}): 1 dispatch.
 */
export function encodeLayerNormGrad(
  b: WebGpuInternals,
  views: { dy: View; x: View; gamma: View; r?: View; dx: View; partials: View },
  m: number,
  d: number,
  eps: number,
): void {
  const wg = rowThreads(d);
  const cpt = Math.ceil(d / wg);
  const { dy, x, gamma, r, dx, partials } = views;
  const u: Scalars[] = [{ i: m }, { i: d }, { f: eps }];
  encode(
    b,
    `SitLNGrad${r ? "R" : ""}_${wg}_${cpt}`,
    () => layerNormGradWgsl(wg, d, r !== undefined),
    r ? [dy, x, gamma, r, dx, partials] : [dy, x, gamma, dx, partials],
    u,
    foldGroups(b, Math.ceil(m / PARTIAL_ROWS)),
  );
}

/**
 * The sums that finish one LayerNorm's (dγ, dβ) from its partial sums `[⌈M/32⌉, 2, D]`
 * ({@link partialsSize}): for encodeStridedSums, alone or with a kernel's other sums.
 */
export function layerNormFinishSums(
  partials: View,
  [dgamma, dbeta]: [View, View],
  m: number,
  d: number,
): StridedSum[] {
  const count = Math.ceil(m / PARTIAL_ROWS);
  const rows = (first: number): View => ({
    buffer: partials.buffer,
    offset: partials.offset + first,
    size: partials.size - first,
  });
  return [
    { source: rows(0), stride: 2 * d, count, out: dgamma },
    { source: rows(d), stride: 2 * d, count, out: dbeta },
  ];
}
