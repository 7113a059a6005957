import * as tf from "@tensorflow/tfjs";
import { ShapeError, checkNumber, describeValue } from "@sit/core";
import { findOverride } from "./registry";
import { webgpuKernelsEnabled } from "./webgpu/register";
import { webgpuPatchify, webgpuUnpatchifyBias } from "./webgpu/unpatchify-bias";

type CustomGradientFunc = Parameters<typeof tf.customGrad>[0];

/** Portable `patchify` (see {@link patchify}). */
export function portablePatchify(images: tf.Tensor4D, p: number): tf.Tensor3D {
  const [b, h, w, c] = images.shape;
  const gh = h / p;
  const gw = w / p;
  // Rank-4 transpose only (rank ≥ 5 transposes are very slow on wasm):
  // [B·gh, p, gw, p·C] → [B·gh, gw, p, p·C] puts each patch's rows next to each other.
  return tf.tidy(() =>
    tf.reshape(tf.transpose(tf.reshape(images, [b * gh, p, gw, p * c]), [0, 2, 1, 3]), [
      b,
      gh * gw,
      p * p * c,
    ]),
  );
}

/** Portable `unpatchify` (see {@link unpatchify}). */
export function portableUnpatchify(
  patches: tf.Tensor3D,
  p: number,
  gridH: number,
  gridW: number,
): tf.Tensor4D {
  const [b, , ppc] = patches.shape;
  const c = ppc / (p * p);
  return tf.tidy(() =>
    tf.reshape(tf.transpose(tf.reshape(patches, [b * gridH, gridW, p, p * c]), [0, 2, 1, 3]), [
      b,
      gridH * p,
      gridW * p,
      c,
    ]),
  );
}

/**
 * Cut NHWC `images [B, H, W, C]` into non-overlapping `p × p` patches:
 * `[B, (H/p)·(W/p), p·p·C]`, patches in row-major grid order, each flattened in
 * (row, column, channel) order. `patchify` followed by a `linear` with a `[p·p·C, D]` weight is a
 * Conv2d with kernel = stride = p, built without conv2d (whose filter gradient is missing on wasm).
 * Differentiable, saving nothing for the tape: its gradient is {@link unpatchify} of dy (on webgpu
 * with the package's kernels, one kernel each way; elsewhere a custom gradient around the
 * implementation, so tfjs's reshapes and transpose record no tape copies).
 */
export function patchify(images: tf.Tensor, patchSize: number): tf.Tensor3D {
  const p = checkNumber("patchSize", patchSize, { integer: true, min: 1 });
  if (!(images instanceof tf.Tensor) || images.rank !== 4)
    throw new ShapeError(
      `patchify images: expected an NHWC tensor [B, H, W, C], got ${describeValue(images)}`,
    );
  const [, h, w] = images.shape;
  if (h % p !== 0 || w % p !== 0)
    throw new ShapeError(
      `patchify images: expected height and width divisible by the patch size ${p}, got ${h}×${w}`,
    );
  if (tf.getBackend() === "webgpu" && webgpuKernelsEnabled() && images.dtype === "float32")
    return webgpuPatchify(images as tf.Tensor4D, p);
  const impl = findOverride("patchify", tf.getBackend()) ?? portablePatchify;
  const op = tf.customGrad(((x: tf.Tensor4D) => ({
    value: impl(x, p),
    gradFunc: (dy: tf.Tensor) => unpatchify(dy, p, [h / p, w / p]),
  })) as unknown as CustomGradientFunc);
  return op(images) as tf.Tensor3D;
}

/**
 * Inverse of {@link patchify}: `patches [B, gridH·gridW, p·p·C]` → NHWC images
 * `[B, gridH·p, gridW·p, C]`. `gridSize` defaults to a square grid.
 */
export function unpatchify(
  patches: tf.Tensor,
  patchSize: number,
  gridSize?: [number, number],
): tf.Tensor4D {
  const p = checkNumber("patchSize", patchSize, { integer: true, min: 1 });
  const [gh, gw] = patchGrid(patches, p, gridSize);
  const impl = findOverride("unpatchify", tf.getBackend()) ?? portableUnpatchify;
  return impl(patches as tf.Tensor3D, p, gh, gw);
}

/** The patch grid of `patches [B, N, p·p·C]` (checked): `gridSize`, or the square √N × √N. */
function patchGrid(
  patches: tf.Tensor,
  p: number,
  gridSize: [number, number] | undefined,
): [number, number] {
  if (!(patches instanceof tf.Tensor) || patches.rank !== 3)
    throw new ShapeError(
      `unpatchify patches: expected a tensor [B, N, p·p·C], got ${describeValue(patches)}`,
    );
  const [, n, ppc] = patches.shape;
  if (ppc % (p * p) !== 0)
    throw new ShapeError(
      `unpatchify patches: expected a last axis divisible by p·p = ${p * p}, got [${patches.shape}]`,
    );
  let gh: number;
  let gw: number;
  if (gridSize === undefined) {
    gh = Math.round(Math.sqrt(n));
    gw = gh;
    if (gh * gw !== n)
      throw new ShapeError(
        `unpatchify patches: ${n} patches do not form a square grid; pass gridSize [rows, cols]`,
      );
  } else {
    if (!Array.isArray(gridSize) || gridSize.length !== 2)
      throw new ShapeError(
        `unpatchify gridSize: expected [rows, cols], got ${describeValue(gridSize)}`,
      );
    gh = checkNumber("gridSize[0]", gridSize[0], { integer: true, min: 1 });
    gw = checkNumber("gridSize[1]", gridSize[1], { integer: true, min: 1 });
    if (gh * gw !== n)
      throw new ShapeError(
        `unpatchify gridSize: expected rows·cols = ${n} (the number of patches), got [${gh}, ${gw}]`,
      );
  }
  return [gh, gw];
}

/**
 * `unpatchify(patches, patchSize, gridSize) + bias`, `bias [C]` one value per channel (a
 * ConvTranspose2d's bias after its per-patch product, as SiT's reconstruction head). On webgpu
 * (the package's kernels on) one fused kernel each way; elsewhere exactly those two operations.
 */
export function unpatchifyAddBias(
  patches: tf.Tensor,
  patchSize: number,
  gridSize: [number, number] | undefined,
  bias: tf.Tensor,
): tf.Tensor4D {
  const p = checkNumber("patchSize", patchSize, { integer: true, min: 1 });
  const grid = patchGrid(patches, p, gridSize);
  const c = (patches.shape[2] as number) / (p * p);
  if (!(bias instanceof tf.Tensor) || bias.rank !== 1 || bias.shape[0] !== c)
    throw new ShapeError(
      `unpatchifyAddBias bias: expected a tensor [${c}], got ${describeValue(bias)}`,
    );
  if (
    tf.getBackend() === "webgpu" &&
    webgpuKernelsEnabled() &&
    patches.dtype === "float32" &&
    bias.dtype === "float32"
  )
    return webgpuUnpatchifyBias(patches as tf.Tensor3D, p, grid, bias as tf.Tensor1D);
  return tf.tidy(() => tf.add(unpatchify(patches, p, grid), bias) as tf.Tensor4D);
}
