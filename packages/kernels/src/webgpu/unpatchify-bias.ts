import * as tf from "@tensorflow/tfjs";
import { type Scalars, encode, viewOf } from "./encode";
import { gridWorkgroups, newTensorInfo, webgpuInternals } from "./flat-buffers";
import { columnSum } from "./reductions";
import { registerWebgpuKernels } from "./program";

// The tail of SiT's reconstruction head as one tfjs kernel each way on webgpu: patches
// `[B, gh·gw, p·p·C]` → NHWC image `[B, gh·p, gw·p, C]` plus a per-channel bias (ConvTranspose2d's)
// in one dispatch; backward, the patches' gradient (the same index map, gathered from dy: one
// dispatch) and the bias gradient (Σ dy per channel: reductions.ts' column sum, which blocks the
// B·H·W pixel rows level by level).

export const UNPATCHIFY_BIAS_KERNEL = "SitUnpatchifyBias";
export const UNPATCHIFY_BIAS_GRAD_KERNEL = "SitUnpatchifyBiasGrad";
// The patch embedding's first step with the same index map: NHWC images → patches in one
// dispatch (SitPatchify), its gradient the plain inverse (SitUnpatchify), each the other's
// gradient; nothing saved (the map is in the attributes).
export const PATCHIFY_KERNEL = "SitPatchify";
export const UNPATCHIFY_KERNEL = "SitUnpatchify";

const THREADS = 256;

interface Attrs {
  patchSize: number;
  gridH: number;
  gridW: number;
}

// Image element e = ((b·H + y)·W + x)·C + c ↔ patch element ((b·N + n)·ppC + k), with
// n = (y / p)·gw + x / p and k = ((y % p)·p + x % p)·C + c.
const INDEX = `
struct U { n : i32, H : i32, W : i32, C : i32, p : i32, gw : i32 };
fn patchIndex(e : i32) -> i32 {
  let c = e % u.C;
  let x = (e / u.C) % u.W;
  let y = (e / (u.C * u.W)) % u.H;
  let b = e / (u.C * u.W * u.H);
  let tokens = (u.H / u.p) * u.gw;
  let n = (y / u.p) * u.gw + x / u.p;
  let k = ((y % u.p) * u.p + x % u.p) * u.C + c;
  return (b * tokens + n) * (u.p * u.p * u.C) + k;
}`;

/**
 * Over the image's elements e: `scatter` writes image → patches (`DP[patchIndex(e)] = DY[e]`: the
 * bias kernel's patch gradient, and patchify), else gathers patches → image, with the bias or not.
 */
function wgsl(scatter: boolean, bias = !scatter): string {
  const [src, extra, dst] = scatter ? ["DY", "", "DP"] : ["P", bias ? "Bias" : "", "Out"];
  const reads = [src, ...(extra ? [extra] : [])];
  const decl = [...reads, dst]
    .map((n, i) => {
      const access = n === dst ? "read_write" : "read";
      return `@group(0) @binding(${i}) var<storage, ${access}> ${n} : array<f32>;`;
    })
    .join("\n");
  const body = scatter
    ? "DP[patchIndex(e)] = DY[e];"
    : `Out[e] = P[patchIndex(e)]${bias ? " + Bias[e % u.C]" : ""};`;
  return `${INDEX}
${decl}
@group(0) @binding(${reads.length + 1}) var<uniform> u : U;
@compute @workgroup_size(${THREADS}, 1, 1)
fn main(@builtin(global_invocation_id) gid : vec3<u32>, @builtin(num_workgroups) nwg : vec3<u32>) {
  for (var e = i32(gid.x); e < u.n; e += i32(nwg.x) * ${THREADS}) { ${body} }
}`;
}

type Args = { inputs: Record<string, tf.TensorInfo>; backend: unknown; attrs: Attrs };

function imageShape(patches: tf.TensorInfo, a: Attrs): [number, number, number, number] {
  const [b, , ppc] = patches.shape;
  return [b, a.gridH * a.patchSize, a.gridW * a.patchSize, ppc / (a.patchSize * a.patchSize)];
}

function uniforms([b, h, w, c]: number[], a: Attrs): Scalars[] {
  return [{ i: b * h * w * c }, { i: h }, { i: w }, { i: c }, { i: a.patchSize }, { i: a.gridW }];
}

function forward(args: unknown): tf.TensorInfo {
  const { inputs, backend, attrs } = args as Args;
  const b = webgpuInternals(backend);
  const shape = imageShape(inputs.patches, attrs);
  const out = newTensorInfo(b, shape);
  const n = tf.util.sizeFromShape(shape);
  const views = [inputs.patches, inputs.bias, out].map((t) => viewOf(b, t));
  encode(b, "SitUnpatchifyBias", () => wgsl(false), views, uniforms(shape, attrs), [
    gridWorkgroups(b, n, THREADS),
    1,
    1,
  ]);
  return out;
}

function backward(args: unknown): tf.TensorInfo[] {
  const { inputs, backend, attrs } = args as Args & { attrs: Attrs & { patchesShape: number[] } };
  const b = webgpuInternals(backend);
  const { dy } = inputs;
  const shape = dy.shape;
  const n = tf.util.sizeFromShape(shape);
  const dp = newTensorInfo(b, attrs.patchesShape);
  const views = [dy, dp].map((t) => viewOf(b, t));
  encode(b, "SitUnpatchifyBiasGrad", () => wgsl(true), views, uniforms(shape, attrs), [
    gridWorkgroups(b, n, THREADS),
    1,
    1,
  ]);
  // Σ dy per channel: dy viewed as [B·H·W, C] (same buffer, another shape).
  const c = shape[3];
  const rows = { dataId: dy.dataId, shape: [n / c, c], dtype: dy.dtype } as tf.TensorInfo;
  const db = columnSum(backend as Parameters<typeof columnSum>[0], rows);
  return [dp, db];
}

/** SitPatchify: `images [B, H, W, C]` → patches `[B, (H/p)·(W/p), p·p·C]`, one dispatch. */
function patchifyForward(args: unknown): tf.TensorInfo {
  const { inputs, backend, attrs } = args as Args;
  const b = webgpuInternals(backend);
  const shape = inputs.images.shape;
  const [batch, , , c] = shape;
  const p = attrs.patchSize;
  const out = newTensorInfo(b, [batch, attrs.gridH * attrs.gridW, p * p * c]);
  const n = tf.util.sizeFromShape(shape);
  const views = [inputs.images, out].map((t) => viewOf(b, t));
  encode(b, "SitUnpatchifyBiasGrad", () => wgsl(true), views, uniforms(shape, attrs), [
    gridWorkgroups(b, n, THREADS),
    1,
    1,
  ]);
  return out;
}

/** SitUnpatchify: patches → NHWC images (no bias), one dispatch. */
function unpatchifyForward(args: unknown): tf.TensorInfo {
  const { inputs, backend, attrs } = args as Args;
  const b = webgpuInternals(backend);
  const shape = imageShape(inputs.patches, attrs);
  const out = newTensorInfo(b, shape);
  const n = tf.util.sizeFromShape(shape);
  const views = [inputs.patches, out].map((t) => viewOf(b, t));
  encode(b, "SitUnpatchify", () => wgsl(false, false), views, uniforms(shape, attrs), [
    gridWorkgroups(b, n, THREADS),
    1,
    1,
  ]);
  return out;
}

let registered = false;

/** Register the kernels and the forward's gradient with tfjs (once). */
export function registerUnpatchifyBiasKernels(): void {
  if (registered) return;
  registered = true;
  registerWebgpuKernels([
    [UNPATCHIFY_BIAS_KERNEL, forward],
    [UNPATCHIFY_BIAS_GRAD_KERNEL, backward],
    [PATCHIFY_KERNEL, patchifyForward],
    [UNPATCHIFY_KERNEL, unpatchifyForward],
  ]);
  tf.registerGradient({
    kernelName: PATCHIFY_KERNEL,
    inputsToSave: [],
    gradFunc: (dy, _saved, attrs) => {
      const dx = tf.engine().runKernel(UNPATCHIFY_KERNEL, { patches: dy as tf.Tensor }, attrs);
      return { images: () => dx as tf.Tensor };
    },
  });
  tf.registerGradient({
    kernelName: UNPATCHIFY_KERNEL,
    inputsToSave: [],
    gradFunc: (dy, _saved, attrs) => {
      const dp = tf.engine().runKernel(PATCHIFY_KERNEL, { images: dy as tf.Tensor }, attrs);
      return { patches: () => dp as tf.Tensor };
    },
  });
  tf.registerGradient({
    kernelName: UNPATCHIFY_BIAS_KERNEL,
    inputsToSave: [],
    gradFunc: (dy, _saved, attrs) => {
      const [dp, db] = tf
        .engine()
        .runKernel(UNPATCHIFY_BIAS_GRAD_KERNEL, { dy: dy as tf.Tensor }, attrs) as tf.Tensor[];
      return { patches: () => dp, bias: () => db };
    },
  });
}

/**
 * `unpatchify(patches) + bias` on webgpu: `patches [B, gridH·gridW, p·p·C]`, `bias [C]` (checked
 * by the caller) → `[B, gridH·p, gridW·p, C]`. One dispatch forward; backward one for the patches
 * and two for the bias up to 32k pixels, one more per factor of 32 (four for 128 images of 224²).
 */
export function webgpuUnpatchifyBias(
  patches: tf.Tensor3D,
  patchSize: number,
  [gridH, gridW]: [number, number],
  bias: tf.Tensor1D,
): tf.Tensor4D {
  registerUnpatchifyBiasKernels();
  const attrs = { patchSize, gridH, gridW, patchesShape: patches.shape };
  return tf
    .engine()
    .runKernel(UNPATCHIFY_BIAS_KERNEL, { patches, bias }, attrs as never) as tf.Tensor4D;
}

/**
 * `patchify(images, patchSize)` on webgpu: `images [B, gridH·p, gridW·p, C]` (float32, checked by
 * the caller) → `[B, gridH·gridW, p·p·C]`. One dispatch each way (the gradient is the inverse
 * map), nothing saved for the tape.
 */
export function webgpuPatchify(images: tf.Tensor4D, patchSize: number): tf.Tensor3D {
  registerUnpatchifyBiasKernels();
  const [, h, w] = images.shape;
  const attrs = { patchSize, gridH: h / patchSize, gridW: w / patchSize };
  return tf.engine().runKernel(PATCHIFY_KERNEL, { images }, attrs as never) as tf.Tensor3D;
}
