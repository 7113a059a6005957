import { type AttentionPassKind, attentionPass } from "./attention";
import { ATTENTION_ROWS } from "./attention-place";
import { attentionWgsl } from "./block-wgsl";
import {
  type BlockDims,
  type WeightGradient,
  gradTempLayout,
  sumsLayout,
  weightGradientShapes,
  workspaceLayout,
} from "./block-layout";
import { type Scalars, type View, carve, carveView, encode, foldGroups, totalOf } from "./encode";
import { type WebGpuInternals, scratchBuffer } from "./flat-buffers";
import { PLAIN_GEMM, encodeGemm, encodeGemmDeferred, gemmSliceFloats } from "./gemm";
import { encodeLayerNormGrad, layerNormFinishSums } from "./layer-norm-grad";
import { type GemmVariant, precisionOf } from "./gemm-wgsl";
import { type StridedSum, encodeStridedSums } from "./strided-sums";

// The dispatches of one pre-norm transformer block, forward and backward, over views of GPU
// buffers: block.ts runs them as one tfjs kernel per block, block-stack.ts runs several blocks in
// one kernel. Either way each block reads its inputs, writes its output and keeps its workspace
// through views, so a stack can chain the blocks through ranges of one buffer.

/** Attributes of the block kernels. */
export interface BlockAttrs {
  numHeads: number;
  eps1: number;
  eps2: number;
  /** Attention logit scale (hd^−½ in a ViT). */
  scale: number;
  hasQkvBias: boolean;
  hasProjBias: boolean;
  hasFc1Bias: boolean;
  hasFc2Bias: boolean;
  /** Return the workspace as a second output (a gradient tape is recording). */
  save: boolean;
  /** x's shape [B, N, D] and the MLP width (the backward sees only the workspace). */
  shape: [number, number, number];
  hidden: number;
  /** Stochastic-depth factors are inputs (s0, s1). */
  scaled: boolean;
  /** Mixed precision (precision.ts): f16 GEMMs, fc1's output u and its gradient du in f16. */
  half: boolean;
}

export function dims(attrs: BlockAttrs): BlockDims {
  const [batch, n, d] = attrs.shape;
  return { batch, n, d, m: batch * n, hidden: attrs.hidden, half: attrs.half };
}

/** One attention pass (attention.ts's bodies) over `qkv [B, N, 3D]`. */
function attention(
  b: WebGpuInternals,
  name: string,
  kind: AttentionPassKind,
  read: [string, View][],
  result: View,
  { batch, n, d }: { batch: number; n: number; d: number },
  attrs: BlockAttrs,
) {
  const hd = d / attrs.numHeads;
  const names = read.map(([k]) => k);
  const u: Scalars[] = [
    { i: batch },
    { i: n },
    { i: 3 * d },
    { i: attrs.numHeads },
    { f: attrs.scale },
  ];
  const groups = batch * attrs.numHeads * Math.ceil(n / ATTENTION_ROWS);
  encode(
    b,
    `SitBlockAttn${name}_${hd}`,
    () => attentionWgsl(hd, names, attentionPass(kind, hd)),
    [...read.map(([, v]) => v), result],
    u,
    foldGroups(b, groups),
  );
}

/**
 * The forward's 5 dispatches: block inputs by name from `w` (x, the weights, s0 and s1 when
 * scaled), the output `y`, and the workspace `ws` (workspaceLayout's floats; what the backward
 * reads, written only when `attrs.save`).
 */
export function encodeBlockForward(
  b: WebGpuInternals,
  attrs: BlockAttrs,
  w: (name: string) => View,
  y: View,
  ws: View,
): void {
  const dm = dims(attrs);
  const { n, d, m, hidden } = dm;
  const v = carveView(ws, workspaceLayout(dm).sizes);
  const opt = (name: string, present: boolean) => (present ? [w(name)] : []);
  const x = w("x");
  const hf = attrs.half;
  // LN1 and LN2 are the prologues of the qkv and fc1 GEMMs (gemm-wgsl.ts `lnA`), which also write
  // LN1(x) to a1 and LN2(h) to a2 when the backward will read them (`lnOut`).
  const save = attrs.save;
  const ln = { ...PLAIN_GEMM, lnA: true, lnOut: save };
  const lnY = (part: View) => (save ? [part] : []);
  encodeGemm(
    b,
    precisionOf(hf, { ...ln, bias: attrs.hasQkvBias }),
    [m, 3 * d, d],
    [x, w("qkvW"), w("ln1g"), w("ln1b"), ...opt("qkvB", attrs.hasQkvBias), v.qkv, ...lnY(v.a1)],
    1,
    attrs.eps1,
  );
  attention(b, "Fwd", "fwd", [["QKV", v.qkv]], v.o, dm, attrs);
  const scaled = attrs.scaled;
  const proj = { ...PLAIN_GEMM, bias: attrs.hasProjBias, residual: true, scaleRows: scaled };
  encodeGemm(
    b,
    precisionOf(hf, proj),
    [m, d, d],
    [v.o, w("projW"), ...opt("projB", attrs.hasProjBias), x, ...opt("s0", scaled), v.h],
    n,
  );
  encodeGemm(
    b,
    precisionOf(hf, { ...ln, bias: attrs.hasFc1Bias }, ["C"]),
    [m, hidden, d],
    [v.h, w("fc1W"), w("ln2g"), w("ln2b"), ...opt("fc1B", attrs.hasFc1Bias), v.u, ...lnY(v.a2)],
    1,
    attrs.eps2,
  );
  const fc2 = { ...proj, bias: attrs.hasFc2Bias, geluA: true };
  encodeGemm(
    b,
    precisionOf(hf, fc2, ["A"]),
    [m, d, hidden],
    [v.u, w("fc2W"), ...opt("fc2B", attrs.hasFc2Bias), v.h, ...opt("s1", scaled), y],
    n,
  );
}

/** What decides the weight gradients' variants (so also their split-K slices). */
type WeightGradientFlags = Pick<
  BlockAttrs,
  "hasQkvBias" | "hasProjBias" | "hasFc1Bias" | "hasFc2Bias" | "scaled" | "half"
>;

/** The backward's weight-gradient GEMMs dW = aᵀ·g, with db = Σ g where the layer has a bias. */
function weightGradientVariants(f: WeightGradientFlags): Record<WeightGradient, GemmVariant> {
  const dw = (colSum: boolean, extra: Partial<GemmVariant> = {}): GemmVariant => ({
    ...PLAIN_GEMM,
    transA: true,
    colSum,
    ...extra,
  });
  return {
    // fc2 reads fc1's pre-activation u (f16 under mixed precision) through the GELU prologue.
    fc2: precisionOf(f.half, dw(f.hasFc2Bias, { geluA: true, scaleB: f.scaled }), ["A"]),
    fc1: precisionOf(f.half, dw(f.hasFc1Bias), ["B"]),
    proj: precisionOf(f.half, dw(f.hasProjBias, { scaleB: f.scaled })),
    qkv: precisionOf(f.half, dw(f.hasQkvBias)),
  };
}

/**
 * The backward's weight-gradient variants and shapes, and the layout of its finishing buffer
 * (block-layout.ts) for `dims` and `flags`.
 */
export function blockWeightGradients(dims: BlockDims, flags: WeightGradientFlags) {
  const variants = weightGradientVariants(flags);
  const shapes = weightGradientShapes(dims);
  const slices = {} as Record<WeightGradient, number>;
  for (const k of Object.keys(shapes) as WeightGradient[])
    slices[k] = gemmSliceFloats(variants[k], shapes[k]);
  return { variants, shapes, sums: sumsLayout(dims, slices) };
}

/** Where the backward writes the gradient of each block input (null: a bias the block lacks). */
export interface BlockGradientViews {
  x: View;
  ln1g: View;
  ln1b: View;
  qkvW: View;
  qkvB: View | null;
  projW: View;
  projB: View | null;
  ln2g: View;
  ln2b: View;
  fc1W: View;
  fc1B: View | null;
  fc2W: View;
  fc2B: View | null;
}

/**
 * The backward's 13 dispatches: the forward's inputs that it reads by name from `w`
 * (SAVED_INPUTS), the output gradient `dy`, the forward's workspace `ws`, and the gradients into
 * `out`.
 */
export function encodeBlockBackward(
  b: WebGpuInternals,
  attrs: BlockAttrs,
  w: (name: string) => View,
  dy: View,
  ws: View,
  out: BlockGradientViews,
): void {
  const dm = dims(attrs);
  const { n, d, m, hidden } = dm;
  const v = carveView(ws, workspaceLayout(dm).sizes);
  const tmpSizes = gradTempLayout(dm, attrs.numHeads).sizes;
  const g = carve(b, scratchBuffer(b, "block-gradients", totalOf(tmpSizes)), tmpSizes);
  // Both LayerNorms' partial sums and the weight gradients' split-K slices share one buffer, and
  // all of their finishing sums are the backward's last dispatch (4 slice sums and a LayerNorm
  // finish were 5 dispatches when the weight gradients split).
  const { variants, shapes, sums: sumsSizes } = blockWeightGradients(dm, attrs);
  const at = carve(b, scratchBuffer(b, "block-sums", sumsSizes.total), sumsSizes.sizes);
  const sums: StridedSum[] = [];
  const scaled = attrs.scaled;
  // The forward's inputs that the backward reads come as inputs of their own (SAVED_INPUTS).
  const s0 = scaled ? [w("s0")] : [];
  const s1 = scaled ? [w("s1")] : [];
  const vb = (o: View | null) => (o ? [o] : []);
  const P = PLAIN_GEMM;
  const hf = attrs.half;
  const weightGradient = (k: WeightGradient, operands: View[], rowsPer = 1) =>
    sums.push(...encodeGemmDeferred(b, variants[k], shapes[k], operands, { rowsPer, area: at[k] }));
  // MLP branch: du = (s1·dy)·W2ᵀ ⊙ gelu′(u); dW2 = gelu(u)ᵀ·(s1·dy), db2 = Σ s1·dy.
  encodeGemm(
    b,
    precisionOf(hf, { ...P, transB: true, geluGrad: true, scaleRows: scaled }, ["H", "C"]),
    [m, hidden, d],
    [dy, w("fc2W"), v.u, ...s1, g.du],
    n,
  );
  weightGradient("fc2", [v.u, dy, ...s1, out.fc2W, ...vb(out.fc2B)], n);
  // da2 = du·W1ᵀ; dW1 = a2ᵀ·du, db1 = Σ du.
  encodeGemm(
    b,
    precisionOf(hf, { ...P, transB: true }, ["A"]),
    [m, d, hidden],
    [g.du, w("fc1W"), g.da],
  );
  weightGradient("fc1", [v.a2, g.du, out.fc1W, ...vb(out.fc1B)]);
  // dh = dy + LN2′ᵀ·da2, with dγ2, dβ2's partial sums.
  encodeLayerNormGrad(
    b,
    { dy: g.da, x: v.h, gamma: w("ln2g"), r: dy, dx: g.dh, partials: at.partials2 },
    m,
    d,
    attrs.eps2,
  );
  // Attention branch: dO = (s0·dh)·Wpᵀ; dWp = oᵀ·(s0·dh), dbp = Σ s0·dh.
  encodeGemm(
    b,
    precisionOf(hf, { ...P, transB: true, scaleRows: scaled }),
    [m, d, d],
    [g.dh, w("projW"), ...s0, g.dO],
    n,
  );
  weightGradient("proj", [v.o, g.dh, ...s0, out.projW, ...vb(out.projB)], n);
  // FlashAttention-2's backward: per query row its statistics (logsumexp, δ = Σ dO·O, kept in
  // `stats` for the next pass) and dQ, in one pass; then dK and dV per key row.
  attention(
    b,
    "StatsDq",
    "statsDq",
    [
      ["QKV", v.qkv],
      ["DY", g.dO],
      ["O", v.o],
      ["ST", g.stats],
    ],
    g.dqkv,
    dm,
    attrs,
  );
  const withStats: [string, View][] = [
    ["QKV", v.qkv],
    ["DY", g.dO],
    ["ST", g.stats],
  ];
  attention(b, "DkDv", "dkdv", withStats, g.dqkv, dm, attrs);
  // da1 = dqkv·Wqkvᵀ (into da: da2 is dead); dWqkv = a1ᵀ·dqkv, dbqkv = Σ dqkv.
  encodeGemm(b, precisionOf(hf, { ...P, transB: true }), [m, d, 3 * d], [g.dqkv, w("qkvW"), g.da]);
  weightGradient("qkv", [v.a1, g.dqkv, out.qkvW, ...vb(out.qkvB)]);
  // dx = dh + LN1′ᵀ·da1, with dγ1, dβ1's partial sums.
  encodeLayerNormGrad(
    b,
    { dy: g.da, x: w("x"), gamma: w("ln1g"), r: g.dh, dx: out.x, partials: at.partials1 },
    m,
    d,
    attrs.eps1,
  );
  const [g1, b1, g2, b2] = [out.ln1g, out.ln1b, out.ln2g, out.ln2b];
  sums.push(...layerNormFinishSums(at.partials1, [g1, b1], m, d));
  sums.push(...layerNormFinishSums(at.partials2, [g2, b2], m, d));
  encodeStridedSums(b, sums);
}
