import * as tf from "@tensorflow/tfjs";
import { type Scalars, encode, viewOf } from "./encode";
import { gridWorkgroups, newTensorInfo, webgpuInternals } from "./flat-buffers";
import { registerWebgpuKernels } from "./program";
import { webgpuKernelsEnabled } from "./register";

// The ViT's token plumbing around the blocks as one tfjs kernel each way on webgpu (tfjs's own
// concat / add / slice / reshape / pad / sum are a kernel call each, and each saved input a tape
// copy):
//  - SitEmbedTokens: tokens `[B, 1+N, D]` = `[cls; patches] + pos` in one dispatch; backward one
//    dispatch: the patches' rows of dy, Σ_b dy for the position embedding, its row 0 for the CLS
//    token. Nothing saved.
//  - SitSplitTokens: tokens → CLS rows `[B, D]` and patch tokens `[B, N, D]` in one dispatch;
//    backward one dispatch writes both gradients back into `[B, 1+N, D]`. Nothing saved.

export const EMBED_TOKENS_KERNEL = "SitEmbedTokens";
export const EMBED_TOKENS_GRAD_KERNEL = "SitEmbedTokensGrad";
export const SPLIT_TOKENS_KERNEL = "SitSplitTokens";
export const SPLIT_TOKENS_GRAD_KERNEL = "SitSplitTokensGrad";

const THREADS = 256;

type Args = { inputs: Record<string, tf.TensorInfo>; backend: unknown };

function bindings(names: string[], written: number): string {
  return names
    .map((n, i) => {
      const access = i >= names.length - written ? "read_write" : "read";
      return `@group(0) @binding(${i}) var<storage, ${access}> ${n} : array<f32>;`;
    })
    .join("\n");
}

/** A kernel over `n` elements: `e` runs over them, with `b`, `t`, `d` (token layout [B, T, D]). */
function program(names: string[], written: number, body: string): string {
  return `${bindings(names, written)}
struct U { n : i32, T : i32, D : i32, B : i32 };
@group(0) @binding(${names.length}) var<uniform> u : U;
@compute @workgroup_size(${THREADS}, 1, 1)
fn main(@builtin(global_invocation_id) gid : vec3<u32>, @builtin(num_workgroups) nwg : vec3<u32>) {
  for (var e = i32(gid.x); e < u.n; e += i32(nwg.x) * ${THREADS}) {
    let d = e % u.D;
    let t = (e / u.D) % u.T;
    let b = e / (u.D * u.T);
    let N = u.T - 1;
    ${body}
  }
}`;
}

const EMBED = program(
  ["P", "Cls", "Pos", "Out"],
  1,
  `var v = 0.0;
    if (t == 0) { v = Cls[d]; } else { v = P[(b * N + t - 1) * u.D + d]; }
    Out[e] = v + Pos[t * u.D + d];`,
);
// One thread per (t, d) of the position embedding (e < T·D, so b = 0): Σ over the batch in order.
const EMBED_GRAD = program(
  ["DY", "DP", "DCls", "DPos"],
  3,
  `var s = 0.0;
    for (var i = 0; i < u.B; i++) {
      let g = DY[(i * u.T + t) * u.D + d];
      s += g;
      if (t > 0) { DP[(i * N + t - 1) * u.D + d] = g; }
    }
    DPos[e] = s;
    if (t == 0) { DCls[d] = s; }`,
);
const SPLIT = program(
  ["X", "Cls", "PT"],
  2,
  `if (t == 0) { Cls[b * u.D + d] = X[e]; } else { PT[(b * N + t - 1) * u.D + d] = X[e]; }`,
);
const SPLIT_GRAD = program(
  ["DCls", "DPT", "DX"],
  1,
  `if (t == 0) { DX[e] = DCls[b * u.D + d]; } else { DX[e] = DPT[(b * N + t - 1) * u.D + d]; }`,
);

function uniforms(n: number, [batch, t, d]: number[]): Scalars[] {
  return [{ i: n }, { i: t }, { i: d }, { i: batch }];
}

function run(
  b: ReturnType<typeof webgpuInternals>,
  key: string,
  code: string,
  views: tf.TensorInfo[],
  n: number,
  shape: number[],
): void {
  encode(
    b,
    key,
    () => code,
    views.map((v) => viewOf(b, v)),
    uniforms(n, shape),
    [gridWorkgroups(b, n, THREADS), 1, 1],
  );
}

function embedForward(args: unknown): tf.TensorInfo {
  const { inputs, backend } = args as Args;
  const b = webgpuInternals(backend);
  const [batch, n, d] = inputs.patches.shape;
  const shape = [batch, n + 1, d];
  const out = newTensorInfo(b, shape);
  const views = [inputs.patches, inputs.cls, inputs.pos, out];
  run(b, EMBED_TOKENS_KERNEL, EMBED, views, batch * (n + 1) * d, shape);
  return out;
}

function embedBackward(args: unknown): tf.TensorInfo[] {
  const { inputs, backend } = args as Args;
  const b = webgpuInternals(backend);
  const shape = inputs.dy.shape;
  const [batch, t, d] = shape;
  const dp = newTensorInfo(b, [batch, t - 1, d]);
  const dcls = newTensorInfo(b, [1, 1, d]);
  const dpos = newTensorInfo(b, [1, t, d]);
  run(b, EMBED_TOKENS_GRAD_KERNEL, EMBED_GRAD, [inputs.dy, dp, dcls, dpos], t * d, shape);
  return [dp, dcls, dpos];
}

function splitForward(args: unknown): tf.TensorInfo[] {
  const { inputs, backend } = args as Args;
  const b = webgpuInternals(backend);
  const shape = inputs.tokens.shape;
  const [batch, t, d] = shape;
  const cls = newTensorInfo(b, [batch, d]);
  const pt = newTensorInfo(b, [batch, t - 1, d]);
  run(b, SPLIT_TOKENS_KERNEL, SPLIT, [inputs.tokens, cls, pt], batch * t * d, shape);
  return [cls, pt];
}

function splitBackward(args: unknown): tf.TensorInfo {
  const { inputs, backend } = args as Args;
  const b = webgpuInternals(backend);
  const [batch, n, d] = inputs.dPatchTokens.shape;
  const shape = [batch, n + 1, d];
  const dx = newTensorInfo(b, shape);
  const views = [inputs.dCls, inputs.dPatchTokens, dx];
  run(b, SPLIT_TOKENS_GRAD_KERNEL, SPLIT_GRAD, views, batch * (n + 1) * d, shape);
  return dx;
}

let registered = false;

/** Register the token kernels and their gradients with tfjs (once). */
function registerTokenKernels(): void {
  if (registered) return;
  registered = true;
  registerWebgpuKernels([
    [EMBED_TOKENS_KERNEL, embedForward],
    [EMBED_TOKENS_GRAD_KERNEL, embedBackward],
    [SPLIT_TOKENS_KERNEL, splitForward],
    [SPLIT_TOKENS_GRAD_KERNEL, splitBackward],
  ]);
  tf.registerGradient({
    kernelName: EMBED_TOKENS_KERNEL,
    inputsToSave: [],
    gradFunc: (dy) => {
      const [dp, dcls, dpos] = tf
        .engine()
        .runKernel(EMBED_TOKENS_GRAD_KERNEL, { dy: dy as tf.Tensor }) as tf.Tensor[];
      return { patches: () => dp, cls: () => dcls, pos: () => dpos };
    },
  });
  tf.registerGradient({
    kernelName: SPLIT_TOKENS_KERNEL,
    inputsToSave: [],
    // (tfjs hands a zero tensor for an output that received no gradient.)
    gradFunc: (dys) => {
      const [dCls, dPatchTokens] = dys as tf.Tensor[];
      const dx = tf.engine().runKernel(SPLIT_TOKENS_GRAD_KERNEL, { dCls, dPatchTokens });
      return { tokens: () => dx as tf.Tensor };
    },
  });
}

/** The webgpu token kernels, when the webgpu backend with this package's kernels is active. */
export function webgpuTokenOps(): {
  /** `[cls; patches] + pos`: patches `[B, N, D]`, cls `[1, 1, D]`, pos `[1, 1+N, D]` (float32, checked by the caller). */
  embed: (patches: tf.Tensor3D, cls: tf.Tensor, pos: tf.Tensor) => tf.Tensor3D;
  /** tokens `[B, 1+N, D]` → CLS rows `[B, D]` and patch tokens `[B, N, D]`. */
  split: (tokens: tf.Tensor3D) => { cls: tf.Tensor2D; patchTokens: tf.Tensor3D };
} | null {
  if (tf.getBackend() !== "webgpu" || !webgpuKernelsEnabled()) return null;
  registerTokenKernels();
  return {
    embed: (patches, cls, pos) =>
      tf.engine().runKernel(EMBED_TOKENS_KERNEL, { patches, cls, pos }) as tf.Tensor3D,
    split: (tokens) => {
      const [cls, patchTokens] = tf
        .engine()
        .runKernel(SPLIT_TOKENS_KERNEL, { tokens }) as unknown as [tf.Tensor2D, tf.Tensor3D];
      return { cls, patchTokens };
    },
  };
}
