import * as tf from "@tensorflow/tfjs";
import { encode, viewOf } from "./encode";
import { newTensorInfo, webgpuInternals } from "./flat-buffers";
import { registerWebgpuKernels } from "./program";

// A step's total loss `a + λ·b` of two scalar losses and the reported vector `[a + λ·b, a, b]` as
// one tfjs kernel each way on webgpu, where tfjs's ops cost five calls (a custom gradient, its mul
// and add, the gradient's clone and mul) and a sixth for the stack. The forward takes two
// dispatches so that `λ·b` is rounded on its own before the add, as tfjs's Mul then Add (one
// shader could be contracted into an fma): the same bits. Backward: `[dy, λ·dy]`, one dispatch.

export const LOSS_SUM_KERNEL = "SitLossSum";
export const LOSS_SUM_GRAD_KERNEL = "SitLossSumGrad";

interface LossSumAttrs {
  lambda: number;
}

// L doubles as the scratch of λ·b between the two dispatches. (Every declared binding is used:
// the pipelines' layouts are derived from the shaders, and an unused one would not be in them.)
const SCALED_WGSL = `struct U { lambda : f32 };
@group(0) @binding(0) var<storage, read> Bs : array<f32>;
@group(0) @binding(1) var<storage, read_write> L : array<f32>;
@group(0) @binding(2) var<uniform> u : U;
@compute @workgroup_size(1, 1, 1)
fn main() { L[0] = u.lambda * Bs[0]; }`;

const SUM_WGSL = `struct U { lambda : f32 };
@group(0) @binding(0) var<storage, read> A : array<f32>;
@group(0) @binding(1) var<storage, read> Bs : array<f32>;
@group(0) @binding(2) var<storage, read_write> L : array<f32>;
@group(0) @binding(3) var<storage, read_write> T : array<f32>;
@group(0) @binding(4) var<uniform> u : U;
@compute @workgroup_size(1, 1, 1)
fn main() {
  _ = u.lambda; // (encode binds the uniforms: a phony use keeps them in the layout)
  let t = A[0] + L[0];
  T[0] = t;
  L[0] = t;
  L[1] = A[0];
  L[2] = Bs[0];
}`;

const GRAD_WGSL = `struct U { lambda : f32 };
@group(0) @binding(0) var<storage, read> DY : array<f32>;
@group(0) @binding(1) var<storage, read_write> DA : array<f32>;
@group(0) @binding(2) var<storage, read_write> DB : array<f32>;
@group(0) @binding(3) var<uniform> u : U;
@compute @workgroup_size(1, 1, 1)
fn main() { DA[0] = DY[0]; DB[0] = u.lambda * DY[0]; }`;

type Args = { inputs: Record<string, tf.TensorInfo>; backend: unknown; attrs: LossSumAttrs };

function forward(args: unknown): tf.TensorInfo[] {
  const { inputs, backend, attrs } = args as Args;
  const b = webgpuInternals(backend);
  const total = newTensorInfo(b, []);
  const losses = newTensorInfo(b, [3]);
  const u = [{ f: attrs.lambda }];
  const [a, s, l, t] = [inputs.a, inputs.b, losses, total].map((x) => viewOf(b, x));
  encode(b, "SitLossSumScaled", () => SCALED_WGSL, [s, l], u, [1, 1, 1]);
  encode(b, "SitLossSumAdd", () => SUM_WGSL, [a, s, l, t], u, [1, 1, 1]);
  return [total, losses];
}

function backward(args: unknown): tf.TensorInfo[] {
  const { inputs, backend, attrs } = args as Args;
  const b = webgpuInternals(backend);
  const da = newTensorInfo(b, []);
  const db = newTensorInfo(b, []);
  const views = [inputs.dy, da, db].map((x) => viewOf(b, x));
  encode(b, "SitLossSumGrad", () => GRAD_WGSL, views, [{ f: attrs.lambda }], [1, 1, 1]);
  return [da, db];
}

let registered = false;

function register(): void {
  if (registered) return;
  registered = true;
  registerWebgpuKernels([
    [LOSS_SUM_KERNEL, forward],
    [LOSS_SUM_GRAD_KERNEL, backward],
  ]);
  tf.registerGradient({
    kernelName: LOSS_SUM_KERNEL,
    // Only the total carries a gradient (the reported vector's is tfjs's zeros: not read).
    gradFunc: (dys, _saved, attrs) => {
      const dy = Array.isArray(dys) ? dys[0] : dys;
      const [da, db] = tf
        .engine()
        .runKernel(LOSS_SUM_GRAD_KERNEL, { dy }, attrs as never) as tf.Tensor[];
      return { a: () => da, b: () => db };
    },
  });
}

/** {@link lossSum} on webgpu: float32 scalars `a`, `b` (checked by the caller). */
export function webgpuLossSum(
  a: tf.Scalar,
  b: tf.Scalar,
  lambda: number,
): { total: tf.Scalar; losses: tf.Tensor1D } {
  register();
  const attrs: LossSumAttrs = { lambda };
  const [total, losses] = tf.engine().runKernel(LOSS_SUM_KERNEL, { a, b }, attrs as never) as [
    tf.Scalar,
    tf.Tensor1D,
  ];
  return { total, losses };
}
