import * as tf from "@tensorflow/tfjs";
import { ShapeError, checkNumber, describeValue } from "@sit/core";
import { findOverride } from "./registry";

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
  const impl = findOverride("patchify", tf.getBackend()) ?? portablePatchify;
  return impl(images as tf.Tensor4D, p);
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
  const impl = findOverride("unpatchify", tf.getBackend()) ?? portableUnpatchify;
  return impl(patches as tf.Tensor3D, p, gh, gw);
}
