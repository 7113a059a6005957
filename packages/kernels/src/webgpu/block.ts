import * as tf from "@tensorflow/tfjs";
import { type AttentionPassKind, attentionPass } from "./attention";
import { ATTENTION_ROWS } from "./attention-place";
import { attentionWgsl } from "./block-wgsl";
import {
  type BlockDims,
  SAVED_INPUTS,
  type WeightGradient,
  gradTempLayout,
  sumsLayout,
  weightGradientShapes,
  workspaceLayout,
} from "./block-layout";
import { type Scalars, type View, carve, encode, foldGroups, totalOf, viewOf } from "./encode";
import {
  type WebGpuInternals,
  bufferHandle,
  newTensorInfo,
  scratchBuffer,
  webgpuInternals,
} from "./flat-buffers";
import { callTable, encodePlanned } from "./encode-plan";
import {
  PLAIN_GEMM,
  encodeGemm,
  encodeGemmDeferred,
  gemmSettingsKey,
  gemmSliceFloats,
} from "./gemm";
import { encodeLayerNormGrad, layerNormFinishSums } from "./layer-norm-grad";
import { type GemmVariant, precisionOf } from "./gemm-wgsl";
import { registerWebgpuKernels } from "./program";
import { type StridedSum, encodeStridedSums } from "./strided-sums";

// The pre-norm transformer block as one tfjs kernel per direction on webgpu:
//   h = x + s0·proj(attention(qkv(LN1(x))));  y = h + s1·fc2(gelu(fc1(LN2(h))))
// (s0, s1: per-sample stochastic-depth factors, optional). The forward records 5 dispatches (each
// LayerNorm is the prologue of the GEMM after it), the backward 13 (split weight gradients
// included, where the device binds 13 storage buffers a shader), each encoded directly on
// tfjs's compute pass (encode.ts) — no tfjs engine call per inner operation. The forward's second
// output is a workspace holding what the backward reads
// (LN1(x), qkv, the attention output, h, LN2(h), fc1's pre-activation), saved for the tape by
// transformerBlock (a handle on its buffer, no tape copy: tape.ts); without a tape (inference, the first pass of a recomputed block) it is a
// temporary and the kernel returns y alone.

export const BLOCK_KERNEL = "SitBlock";
/** The block with stochastic-depth factors (two more inputs, saved for the backward). */
export const BLOCK_SCALED_KERNEL = "SitBlockScaled";
export const BLOCK_GRAD_KERNEL = "SitBlockGrad";

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

function dims(attrs: BlockAttrs): BlockDims {
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

export function blockForward(args: unknown): tf.TensorInfo[] {
  const { inputs, backend, attrs } = args as {
    inputs: Record<string, tf.TensorInfo>;
    backend: unknown;
    attrs: BlockAttrs;
  };
  const b = webgpuInternals(backend);
  const t = inputs;
  const dm = dims(attrs);
  const { n, d, m, hidden } = dm;
  const y = newTensorInfo(b, t.x.shape);
  const layout = workspaceLayout(dm);
  const ws = attrs.save
    ? bufferHandle(b, layout.total)
    : scratchBuffer(b, "block-workspace", layout.total);
  // Recorded once per signature, replayed after that (encode-plan.ts).
  const { table, names } = callTable(b, t, [y, ws]);
  const signature = `F|${JSON.stringify(attrs)}|${names}|${gemmSettingsKey()}`;
  encodePlanned(b, signature, table, () => {
    const v = carve(b, ws, layout.sizes);
    const w = (name: string) => viewOf(b, t[name]);
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
      [v.u, w("fc2W"), ...opt("fc2B", attrs.hasFc2Bias), v.h, ...opt("s1", scaled), viewOf(b, y)],
      n,
    );
  });
  return attrs.save ? [y, ws] : [y];
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

function blockBackward(args: unknown): tf.TensorInfo[] {
  const { inputs, backend, attrs } = args as {
    inputs: Record<string, tf.TensorInfo>;
    backend: unknown;
    attrs: BlockAttrs;
  };
  const b = webgpuInternals(backend);
  const t = inputs;
  const dm = dims(attrs);
  const { n, d, m, hidden } = dm;
  const out = (shape: number[]) => newTensorInfo(b, shape);
  const dx = out(attrs.shape);
  const [dln1g, dln1b, dln2g, dln2b] = [0, 1, 2, 3].map(() => out([d]));
  const dqkvW = out([d, 3 * d]);
  const dqkvB = attrs.hasQkvBias ? out([3 * d]) : null;
  const dprojW = out([d, d]);
  const dprojB = attrs.hasProjBias ? out([d]) : null;
  const dfc1W = out([d, hidden]);
  const dfc1B = attrs.hasFc1Bias ? out([hidden]) : null;
  const dfc2W = out([hidden, d]);
  const dfc2B = attrs.hasFc2Bias ? out([d]) : null;
  const grads = [dx, dln1g, dln1b, dqkvW, dqkvB, dprojW, dprojB, dln2g, dln2b];
  grads.push(dfc1W, dfc1B, dfc2W, dfc2B);
  const outputs = grads.filter((o): o is tf.TensorInfo => o !== null);
  // Recorded once per signature, replayed after that (encode-plan.ts).
  const { table, names } = callTable(b, t, outputs);
  const signature = `B|${JSON.stringify(attrs)}|${names}|${gemmSettingsKey()}`;
  encodePlanned(b, signature, table, () => {
    const v = carve(b, t.ws, workspaceLayout(dm).sizes);
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
    const w = (name: string) => viewOf(b, t[name]);
    const s0 = scaled ? [w("s0")] : [];
    const s1 = scaled ? [w("s1")] : [];
    const vb = (o: tf.TensorInfo | null) => (o ? [viewOf(b, o)] : []);
    const dy = viewOf(b, t.dy);
    const P = PLAIN_GEMM;
    const hf = attrs.half;
    const weightGradient = (k: WeightGradient, operands: View[], rowsPer = 1) =>
      sums.push(
        ...encodeGemmDeferred(b, variants[k], shapes[k], operands, { rowsPer, area: at[k] }),
      );
    // MLP branch: du = (s1·dy)·W2ᵀ ⊙ gelu′(u); dW2 = gelu(u)ᵀ·(s1·dy), db2 = Σ s1·dy.
    encodeGemm(
      b,
      precisionOf(hf, { ...P, transB: true, geluGrad: true, scaleRows: scaled }, ["H", "C"]),
      [m, hidden, d],
      [dy, w("fc2W"), v.u, ...s1, g.du],
      n,
    );
    weightGradient("fc2", [v.u, dy, ...s1, viewOf(b, dfc2W), ...vb(dfc2B)], n);
    // da2 = du·W1ᵀ; dW1 = a2ᵀ·du, db1 = Σ du.
    encodeGemm(
      b,
      precisionOf(hf, { ...P, transB: true }, ["A"]),
      [m, d, hidden],
      [g.du, w("fc1W"), g.da],
    );
    weightGradient("fc1", [v.a2, g.du, viewOf(b, dfc1W), ...vb(dfc1B)]);
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
    weightGradient("proj", [v.o, g.dh, ...s0, viewOf(b, dprojW), ...vb(dprojB)], n);
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
    encodeGemm(
      b,
      precisionOf(hf, { ...P, transB: true }),
      [m, d, 3 * d],
      [g.dqkv, w("qkvW"), g.da],
    );
    weightGradient("qkv", [v.a1, g.dqkv, viewOf(b, dqkvW), ...vb(dqkvB)]);
    // dx = dh + LN1′ᵀ·da1, with dγ1, dβ1's partial sums.
    encodeLayerNormGrad(
      b,
      { dy: g.da, x: w("x"), gamma: w("ln1g"), r: g.dh, dx: viewOf(b, dx), partials: at.partials1 },
      m,
      d,
      attrs.eps1,
    );
    const [g1, b1, g2, b2] = [dln1g, dln1b, dln2g, dln2b].map((o) => viewOf(b, o));
    sums.push(...layerNormFinishSums(at.partials1, [g1, b1], m, d));
    sums.push(...layerNormFinishSums(at.partials2, [g2, b2], m, d));
    encodeStridedSums(b, sums);
  });
  return outputs;
}

/** Input names of the block kernels whose gradients the backward kernel returns, in its order. */
const GRAD_INPUTS: [string, keyof BlockAttrs | null][] = [
  ["x", null],
  ["ln1g", null],
  ["ln1b", null],
  ["qkvW", null],
  ["qkvB", "hasQkvBias"],
  ["projW", null],
  ["projB", "hasProjBias"],
  ["ln2g", null],
  ["ln2b", null],
  ["fc1W", null],
  ["fc1B", "hasFc1Bias"],
  ["fc2W", null],
  ["fc2B", "hasFc2Bias"],
];

/** The forward's inputs that the backward reads, in order (after the workspace). */
export function savedInputNames(attrs: { scaled: boolean }): string[] {
  return SAVED_INPUTS.filter((name) => attrs.scaled || (name !== "s0" && name !== "s1"));
}

/** Where a block's attributes carry the Variables its gradient reads by reference. */
const HELD = Symbol("heldInputs");

/**
 * Hand the gradient of a block call the inputs among `names` that are Variables by reference,
 * through its `attrs` (a symbol-keyed property: not in the plan signature's JSON): the tape then
 * saves only the others. A handle per saved tensor costs tfjs a tensor made and freed: 72 a
 * SiT step for the blocks' weights alone (6 per block). A Variable outlives the tape (tidy never
 * disposes it), and nothing assigns a weight between a forward and its backward (the optimiser
 * steps after the gradients), so the gradient reads the values the forward used. Returns the
 * held inputs.
 */
export function holdVariables(
  attrs: object,
  names: string[],
  inputs: Record<string, tf.Tensor>,
): Record<string, tf.Tensor> {
  const held: Record<string, tf.Tensor> = {};
  for (const name of names) if (inputs[name] instanceof tf.Variable) held[name] = inputs[name];
  Object.defineProperty(attrs, HELD, { value: held, enumerable: false });
  return held;
}

let registered = false;

/** Register the block kernels and the forward's gradient with tfjs (once). */
export function registerBlockKernels(): void {
  if (registered) return;
  registered = true;
  registerWebgpuKernels([
    [BLOCK_KERNEL, blockForward],
    [BLOCK_SCALED_KERNEL, blockForward],
    [BLOCK_GRAD_KERNEL, blockBackward],
  ]);
  const gradFunc = (dys: tf.Tensor | tf.Tensor[], saved: tf.Tensor[], raw: unknown) => {
    const attrs = raw as BlockAttrs;
    // saved: the workspace, then the inputs the backward reads (savedInputNames) that were not
    // held by reference (holdVariables).
    const held = (raw as { [HELD]?: Record<string, tf.Tensor> })[HELD] ?? {};
    const inputs: Record<string, tf.Tensor> = { dy: (dys as tf.Tensor[])[0], ws: saved[0] };
    let k = 1;
    for (const name of savedInputNames(attrs)) inputs[name] = held[name] ?? saved[k++];
    const outs = tf.engine().runKernel(BLOCK_GRAD_KERNEL, inputs, attrs as never) as tf.Tensor[];
    const grads: Record<string, () => tf.Tensor> = {};
    let g = 0;
    for (const [name, flag] of GRAD_INPUTS) {
      if (flag && !attrs[flag]) continue;
      const o = outs[g++];
      grads[name] = () => o;
    }
    // The drop-path factors are constants drawn on the host.
    if (attrs.scaled) {
      grads.s0 = () => tf.zeros([attrs.shape[0]]);
      grads.s1 = () => tf.zeros([attrs.shape[0]]);
    }
    return grads;
  };
  // The workspace and the inputs the backward reads are saved by transformerBlock, without tape
  // copies (tape.ts).
  for (const kernelName of [BLOCK_KERNEL, BLOCK_SCALED_KERNEL])
    tf.registerGradient({ kernelName, gradFunc });
}
