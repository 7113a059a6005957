import { PARTIAL_ROWS, finishPartialsWgsl, layerNormGradWgsl } from "./block-wgsl";
import { type Scalars, type View, encode, foldGroups } from "./encode";
import type { WebGpuInternals } from "./flat-buffers";
import { rowThreads } from "./reductions";

// LayerNorm's backward as directly encoded dispatches (encode.ts), shared by the fused block
// (two LayerNorms, each residual, finished together) and the LayerNorm kernel (the ViT's final
// norm): one pass per LayerNorm for dX and the partial sums of dγ, dβ, one finishing pass.

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
 * (dγ, dβ) of one LayerNorm, or of two whose partial sums lie in one buffer, the second after the
 * first (`outs`: dγ1, dβ1[, dγ2, dβ2]): 1 dispatch.
 */
export function encodeLayerNormFinish(
  b: WebGpuInternals,
  partials: [View] | [View, View],
  outs: View[],
  m: number,
  d: number,
): void {
  const [p1, p2] = partials;
  // One binding over both parts; the second starts `stride` floats after the first.
  const stride = p2 ? p2.offset - p1.offset : 0;
  const all: View = p2 ? { buffer: p1.buffer, offset: p1.offset, size: stride + p2.size } : p1;
  const sets = p2 ? 2 : 1;
  const u: Scalars[] = [{ i: Math.ceil(m / PARTIAL_ROWS) }, { i: d }, { i: stride }];
  encode(b, `SitLNFinish_${sets}`, () => finishPartialsWgsl(sets), [all, ...outs], u, [
    Math.ceil(d / 64),
    sets,
    1,
  ]);
}
