import * as tf from "@tensorflow/tfjs";
import { ShapeError, invalidArgument } from "@sit/core";
import {
  bufferOf,
  dispatchAll,
  gridWorkgroups,
  newTensorInfo,
  webgpuInternals,
} from "./flat-buffers";

// Applying a drawn GMML corruption (a per-pixel source map, see @sit/gmml's CorruptionPlan) to a
// batch where it lives: on webgpu one compute dispatch; elsewhere one gather from a table of
// [clean pixels; a zero pixel; the noise pixels]. Both only copy values, so they agree exactly.

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
  dispatchAll(b, [
    {
      key: PIXEL_SOURCES_KERNEL,
      code: PIXEL_SOURCES_WGSL,
      buffers: [bufferOf(b, out), bufferOf(b, images), bufferOf(b, source), bufferOf(b, noise)],
      uniforms: [
        { type: "uint32", data: [n] },
        { type: "uint32", data: [images.shape[3]] },
        { type: "uint32", data: [0] },
        { type: "uint32", data: [0] },
      ],
      workgroups: gridWorkgroups(b, n, THREADS),
    },
  ]);
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

function portablePixelSources(
  images: tf.Tensor4D,
  source: Int32Array,
  noise: Float32Array,
): tf.Tensor4D {
  const [B, H, W, C] = images.shape;
  const pixels = B * H * W;
  const index = new Int32Array(pixels);
  for (let p = 0; p < pixels; p++) {
    const s = source[p];
    index[p] = s >= 0 ? s : s === -1 ? pixels : pixels + 1 + (-2 - s);
  }
  return tf.tidy(() => {
    const table = tf.concat([
      images.reshape([pixels, C]),
      tf.zeros([1, C]),
      tf.tensor2d(noise, [noise.length / C, C]),
    ]);
    return tf.gather(table, tf.tensor1d(index, "int32")).reshape([B, H, W, C]) as tf.Tensor4D;
  });
}

/**
 * Build a corrupted batch from `images` `[B, H, W, C]` and a per-pixel source map (@sit/gmml's
 * `CorruptionPlan`): output pixel p (flat `b·H·W + y·W + x`) takes all channels from clean pixel
 * `source[p]` when it is ≥ 0, zeros when it is −1, and noise values `noise[k·C … k·C + C)` when it is
 * `−2 − k`. On webgpu this is one compute dispatch (tfjs kernel `SitApplyPixelSources`); on other
 * backends one gather. Pure copies: the result is exact on every backend. Returns a new tensor.
 */
export function applyPixelSources(
  images: tf.Tensor4D,
  source: Int32Array,
  noise: Float32Array,
): tf.Tensor4D {
  if (!(images instanceof tf.Tensor) || images.rank !== 4 || images.dtype !== "float32")
    throw invalidArgument("images", images, "a float32 NHWC tensor [B, H, W, C]");
  const [B, H, W, C] = images.shape;
  if (!(source instanceof Int32Array) || source.length !== B * H * W)
    throw new ShapeError(
      `source: expected an Int32Array of ${B * H * W} values (one per pixel of [${images.shape.join(", ")}]), got ${source instanceof Int32Array ? source.length : typeof source}`,
    );
  if (!(noise instanceof Float32Array) || noise.length % C !== 0)
    throw invalidArgument("noise", noise, `a Float32Array whose length is a multiple of ${C}`);
  const slots = noise.length / C;
  for (let p = 0; p < source.length; p++) {
    const s = source[p];
    if (s >= B * H * W || s < -1 - slots)
      throw invalidArgument(
        `source[${p}]`,
        s,
        `a pixel in [0, ${B * H * W}), -1, or a noise slot down to ${-1 - slots}`,
      );
  }
  if (tf.getBackend() !== "webgpu") return portablePixelSources(images, source, noise);
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
