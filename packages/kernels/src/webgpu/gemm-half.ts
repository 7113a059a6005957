import * as tf from "@tensorflow/tfjs";
import { ShapeError, describeValue } from "@sit/core";
import { assertMixedPrecision } from "../precision";
import { encode, viewOf } from "./encode";
import { type WebGpuInternals, newTensorInfo, webgpuInternals } from "./flat-buffers";
import { PLAIN_GEMM, encodeGemm } from "./gemm";
import { HALF_WGSL, type HalfBinding } from "./gemm-wgsl";

// f16 tensors for the mixed-precision GEMMs (gemm-wgsl.ts's `half` variants). tfjs has no float16
// dtype, so an f16 array of n values lives in a float32 tensor of ⌈n/2⌉ elements (two halves per
// 32-bit word) — opaque to tfjs, meaningful only to these kernels — with its logical shape beside
// it. Conversions are one dispatch each; SitGemmHalf is the GEMM family on such operands (no
// gradient: for benchmarks, tests and as the building block of the f16 paths).

export const TO_HALF_KERNEL = "SitToHalf";
export const FROM_HALF_KERNEL = "SitFromHalf";
export const GEMM_HALF_KERNEL = "SitGemmHalf";

/** An f16 array on the GPU: `data` holds ⌈n/2⌉ words of packed halves, `shape` its logical shape. */
export interface HalfTensor {
  data: tf.Tensor1D;
  shape: number[];
}

/** Words of packed f16 holding `n` halves. */
export function halfWords(n: number): number {
  return Math.max(1, Math.ceil(n / 2));
}

const CONVERT_THREADS = 256;

function convertWgsl(toHalf: boolean): string {
  const [src, dst] = toHalf ? ["f32", "f16"] : ["f16", "f32"];
  return `${HALF_WGSL}
struct U { n : i32 };
@group(0) @binding(0) var<storage, read_write> X : array<${src}>;
@group(0) @binding(1) var<storage, read_write> Y : array<${dst}>;
@group(0) @binding(2) var<uniform> u : U;
@compute @workgroup_size(${CONVERT_THREADS}, 1, 1)
fn main(@builtin(global_invocation_id) gid : vec3<u32>, @builtin(num_workgroups) nwg : vec3<u32>) {
  let stride = i32(nwg.x) * ${CONVERT_THREADS};
  for (var i = i32(gid.x); i < u.n; i += stride) { Y[i] = ${toHalf ? "sitHalf(X[i])" : "f32(X[i])"}; }
}`;
}

function convert(b: WebGpuInternals, x: tf.TensorInfo, n: number, toHalf: boolean, out: number[]) {
  const y = newTensorInfo(b, out);
  const limit = b.device.limits.maxComputeWorkgroupsPerDimension;
  const groups = Math.max(1, Math.min(Math.ceil(n / CONVERT_THREADS), limit));
  if (n > 0)
    encode(
      b,
      toHalf ? "SitToHalf" : "SitFromHalf",
      () => convertWgsl(toHalf),
      [viewOf(b, x), viewOf(b, y)],
      [{ i: n }],
      [groups, 1, 1],
    );
  return y;
}

interface GemmHalfAttrs {
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
  geluA: boolean;
  /** Bindings stored as f16 (A, B and/or C). */
  half: HalfBinding[];
}

let registered = false;

function registerHalfKernels(): void {
  if (registered) return;
  registered = true;
  const kernels: [string, (args: unknown) => tf.TensorInfo][] = [
    [
      TO_HALF_KERNEL,
      (args) => {
        const { inputs, backend } = args as { inputs: { x: tf.TensorInfo }; backend: unknown };
        const n = tf.util.sizeFromShape(inputs.x.shape);
        return convert(webgpuInternals(backend), inputs.x, n, true, [halfWords(n)]);
      },
    ],
    [
      FROM_HALF_KERNEL,
      (args) => {
        const { inputs, backend, attrs } = args as {
          inputs: { x: tf.TensorInfo };
          backend: unknown;
          attrs: { shape: number[] };
        };
        const n = tf.util.sizeFromShape(attrs.shape);
        return convert(webgpuInternals(backend), inputs.x, n, false, attrs.shape);
      },
    ],
    [
      GEMM_HALF_KERNEL,
      (args) => {
        const { inputs, backend, attrs } = args as {
          inputs: Record<string, tf.TensorInfo>;
          backend: unknown;
          attrs: GemmHalfAttrs;
        };
        const b = webgpuInternals(backend);
        const { m, n, k, half } = attrs;
        const c = newTensorInfo(b, half.includes("C") ? [halfWords(m * n)] : [m, n]);
        const variant = { ...PLAIN_GEMM, ...attrs, bias: !!inputs.bias, half };
        const { a, b: bm, bias } = inputs;
        if (m > 0 && n > 0) encodeGemm(b, variant, [m, n, k], [a, bm, ...(bias ? [bias] : []), c]);
        return c;
      },
    ],
  ];
  for (const [kernelName, kernelFunc] of kernels)
    tf.registerKernel({
      kernelName,
      backendName: "webgpu",
      kernelFunc: kernelFunc as unknown as tf.KernelFunc,
    });
}

/** `x` (float32, webgpu) rounded to f16 (overflow → ±inf), one dispatch. */
export function webgpuToHalf(x: tf.Tensor): HalfTensor {
  if (!(x instanceof tf.Tensor) || x.dtype !== "float32")
    throw new ShapeError(`toHalf x: expected a float32 tensor, got ${describeValue(x)}`);
  assertMixedPrecision("toHalf");
  registerHalfKernels();
  const data = tf.engine().runKernel(TO_HALF_KERNEL, { x }) as tf.Tensor1D;
  return { data, shape: [...x.shape] };
}

/** The f32 tensor of an f16 array, one dispatch. */
export function webgpuFromHalf(h: HalfTensor): tf.Tensor {
  checkHalf("fromHalf h", h);
  registerHalfKernels();
  return tf.engine().runKernel(FROM_HALF_KERNEL, { x: h.data }, { shape: h.shape } as never);
}

function checkHalf(name: string, h: HalfTensor): void {
  const ok =
    h?.data instanceof tf.Tensor &&
    Array.isArray(h.shape) &&
    h.data.size === halfWords(h.shape.reduce((p, q) => p * q, 1));
  if (!ok)
    throw new ShapeError(
      `${name}: expected a HalfTensor { data: ⌈size/2⌉ packed words, shape } from webgpuToHalf, got ${describeValue(h)}`,
    );
}

/** Options of {@link webgpuGemmHalf}. */
export interface GemmHalfOptions {
  transposeA?: boolean;
  transposeB?: boolean;
  /** Exact GELU on A's elements as they are loaded (before the rounding to f16). */
  geluA?: boolean;
  bias?: tf.Tensor1D | null;
}

/**
 * Mixed-precision `pre(op(a))·op(b) (+ bias)` on webgpu in one dispatch: operands rounded to f16
 * (stored as f16 when given as {@link HalfTensor}, else read from float32 and rounded as loaded),
 * f32 accumulation, the result rounded to f16 — PyTorch autocast's f16 GEMM. Returns an f16
 * {@link HalfTensor}, or with `outF32` the same values in a float32 tensor. No gradient.
 */
export function webgpuGemmHalf(
  a: tf.Tensor2D | HalfTensor,
  b: tf.Tensor2D | HalfTensor,
  options: GemmHalfOptions & { outF32: true },
): tf.Tensor2D;
export function webgpuGemmHalf(
  a: tf.Tensor2D | HalfTensor,
  b: tf.Tensor2D | HalfTensor,
  options?: GemmHalfOptions & { outF32?: false },
): HalfTensor;
export function webgpuGemmHalf(
  a: tf.Tensor2D | HalfTensor,
  b: tf.Tensor2D | HalfTensor,
  options: GemmHalfOptions & { outF32?: boolean } = {},
): HalfTensor | tf.Tensor2D {
  const operand = (name: string, t: tf.Tensor2D | HalfTensor) => {
    if (t instanceof tf.Tensor) {
      if (t.rank !== 2 || t.dtype !== "float32")
        throw new ShapeError(
          `gemmHalf ${name}: expected a float32 matrix, got ${describeValue(t)}`,
        );
      return { data: t as tf.Tensor, shape: t.shape, half: false };
    }
    checkHalf(`gemmHalf ${name}`, t);
    if (t.shape.length !== 2)
      throw new ShapeError(`gemmHalf ${name}: expected a matrix, got shape [${t.shape}]`);
    return { data: t.data as tf.Tensor, shape: t.shape, half: true };
  };
  const A = operand("a", a);
  const B = operand("b", b);
  const transA = options.transposeA === true;
  const transB = options.transposeB === true;
  const [m, k] = transA ? [A.shape[1], A.shape[0]] : A.shape;
  const [kb, n] = transB ? [B.shape[1], B.shape[0]] : B.shape;
  if (k !== kb)
    throw new ShapeError(
      `gemmHalf b: expected ${k} along its ${transB ? "second" : "first"} axis to match a's inner dimension, got shape [${B.shape}]`,
    );
  if (options.bias && (options.bias.rank !== 1 || options.bias.shape[0] !== n))
    throw new ShapeError(
      `gemmHalf bias: expected a tensor of shape [${n}], got ${describeValue(options.bias)}`,
    );
  assertMixedPrecision("gemmHalf");
  registerHalfKernels();
  const half: HalfBinding[] = [];
  if (A.half) half.push("A");
  if (B.half) half.push("B");
  if (!options.outF32) half.push("C");
  const attrs: GemmHalfAttrs = { m, n, k, transA, transB, geluA: options.geluA === true, half };
  const inputs: Record<string, tf.Tensor> = { a: A.data, b: B.data };
  if (options.bias) inputs.bias = options.bias;
  const c = tf.engine().runKernel(GEMM_HALF_KERNEL, inputs, attrs as never) as tf.Tensor;
  return options.outF32 ? (c as tf.Tensor2D) : { data: c as tf.Tensor1D, shape: [m, n] };
}
