import * as tf from "@tensorflow/tfjs";
import { encode, viewOf } from "./encode";
import { gridWorkgroups, newTensorInfo, webgpuInternals } from "./flat-buffers";

// Applying a drawn GMML corruption (a per-pixel source map, see @sit/gmml's CorruptionPlan) to a
// batch where it lives, on webgpu: one compute dispatch. It only copies values, so it agrees
// exactly with @sit/gmml's portable gather.

/** tfjs kernel name of the WebGPU application (registered for the webgpu backend). */
export const PIXEL_SOURCES_KERNEL = "SitApplyPixelSources";

const THREADS = 256;

const PIXEL_SOURCES_WGSL = /* wgsl */ `
struct U { n: u32, channels: u32, pad0: u32, pad1: u32 };
@group(0) @binding(0) var<storage, read_write> result: array<f32>;
@group(0) @binding(1) var<storage, read> images: array<f32>;
@group(0) @binding(2) var<storage, read> source: array<i32>;
@group(0) @binding(3) var<storage, read> noise: array<f32>;
@group(0) @binding(4) var<uniform> u: U;
@compute @workgroup_size(${THREADS})
fn main(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let stride = nwg.x * ${THREADS}u;
  for (var i = gid.x; i < u.n; i = i + stride) {
    let c = i % u.channels;
    let s = source[i / u.channels];
    if (s >= 0) {
      result[i] = images[u32(s) * u.channels + c];
    } else if (s == -1) {
      result[i] = 0.0;
    } else {
      result[i] = noise[u32(-2 - s) * u.channels + c];
    }
  }
}`;

function pixelSourcesKernelFunc(args: {
  inputs: Record<string, tf.TensorInfo>;
  backend: unknown;
}): tf.TensorInfo {
  const b = webgpuInternals(args.backend);
  const { images, source, noise } = args.inputs;
  const n = tf.util.sizeFromShape(images.shape);
  const out = newTensorInfo(b, [...images.shape]);
  // Encoded on tfjs's open pass with its uniforms and bind group kept (encode.ts): the same
  // buffers come back step after step.
  encode(
    b,
    PIXEL_SOURCES_KERNEL,
    () => PIXEL_SOURCES_WGSL,
    [viewOf(b, out), viewOf(b, images), viewOf(b, source), viewOf(b, noise)],
    [{ i: n }, { i: images.shape[3] }, { i: 0 }, { i: 0 }],
    [gridWorkgroups(b, n, THREADS), 1, 1],
  );
  return out;
}

/** Register the `SitApplyPixelSources` tfjs kernel for webgpu (idempotent). */
export function registerPixelSourcesTfjsKernel(): void {
  if (tf.getKernel(PIXEL_SOURCES_KERNEL, "webgpu")) return;
  tf.registerKernel({
    kernelName: PIXEL_SOURCES_KERNEL,
    backendName: "webgpu",
    kernelFunc: pixelSourcesKernelFunc as unknown as tf.KernelFunc,
  });
}

/**
 * The WebGPU application of a drawn GMML corruption for @sit/core's `registerPixelSourcesKernel`
 * (plugged in by `setWebgpuFlatKernels`; @sit/gmml's `applyPixelSources` checks the
 * arguments and calls it on webgpu): one compute dispatch, tfjs kernel `SitApplyPixelSources`.
 * Returns a new tensor.
 */
export function webgpuPixelSources(
  images: tf.Tensor4D,
  source: Int32Array,
  noise: Float32Array,
): tf.Tensor4D {
  registerPixelSourcesTfjsKernel();
  return tf.tidy(() => {
    const src = tf.tensor1d(source, "int32");
    // A binding cannot be empty: one unused value when the plan has no noise.
    const nz = tf.tensor1d(noise.length > 0 ? noise : new Float32Array(1));
    return tf
      .engine()
      .runKernel(PIXEL_SOURCES_KERNEL, { images, source: src, noise: nz } as never) as tf.Tensor4D;
  });
}
