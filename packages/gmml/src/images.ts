import * as tf from "@tensorflow/tfjs";
import { ConfigError, ShapeError, describeValue, invalidArgument } from "@sit/core";

/** A batch of NHWC float32 images held in a typed array: `data[((b·H + y)·W + x)·C + c]`. */
export interface ImageBatch {
  data: Float32Array;
  shape: [number, number, number, number];
}

/** Images accepted by the maskers: an NHWC float32 tensor or an {@link ImageBatch}. */
export type ImageInput = tf.Tensor | ImageBatch;

/** A per-pixel mask `[B, H, W]`, 1 where a pixel is corrupted (the same on every channel). */
export interface PixelMask {
  data: Uint8Array;
  shape: [number, number, number];
}

function isPositiveInt(v: unknown): boolean {
  return typeof v === "number" && Number.isInteger(v) && v > 0;
}

/**
 * Read `input` as an NHWC float32 batch. A tensor is read synchronously; a typed-array batch is
 * returned as is (not copied). Throws a ShapeError naming `name` when the layout is wrong.
 */
export function readImageBatch(name: string, input: ImageInput): ImageBatch {
  if (input instanceof tf.Tensor) {
    if (input.rank !== 4)
      throw new ShapeError(
        `${name}: expected an NHWC tensor of rank 4 [B, H, W, C], got shape [${input.shape.join(", ")}]`,
      );
    if (input.dtype !== "float32") throw invalidArgument(name, input, "a float32 tensor");
    if (input.size === 0)
      throw new ShapeError(
        `${name}: expected a non-empty batch, got shape [${input.shape.join(", ")}]`,
      );
    return {
      data: input.dataSync() as Float32Array,
      shape: input.shape as [number, number, number, number],
    };
  }
  if (typeof input !== "object" || input === null || !(input.data instanceof Float32Array))
    throw invalidArgument(
      name,
      input,
      "an NHWC float32 tensor or { data: Float32Array, shape: [B, H, W, C] }",
    );
  const shape = input.shape;
  if (!Array.isArray(shape) || shape.length !== 4 || !shape.every(isPositiveInt))
    throw new ShapeError(
      `${name}.shape: expected [B, H, W, C] of positive integers, got ${describeValue(shape)}`,
    );
  const size = shape[0] * shape[1] * shape[2] * shape[3];
  if (input.data.length !== size)
    throw new ShapeError(
      `${name}.data: expected ${size} values for shape [${shape.join(", ")}], got ${input.data.length}`,
    );
  return input;
}

/** Validate a pixel mask against a batch's `[B, H, W]`. Accepts 0/1 `Uint8Array` masks. */
export function checkPixelMask(
  name: string,
  mask: PixelMask,
  expected: readonly [number, number, number],
): void {
  if (typeof mask !== "object" || mask === null || !(mask.data instanceof Uint8Array))
    throw invalidArgument(name, mask, "{ data: Uint8Array, shape: [B, H, W] }");
  const s = mask.shape;
  if (!Array.isArray(s) || s.length !== 3 || s.some((v, i) => v !== expected[i]))
    throw new ShapeError(
      `${name}.shape: expected [${expected.join(", ")}], got ${describeValue(s)}`,
    );
  if (mask.data.length !== expected[0] * expected[1] * expected[2])
    throw new ShapeError(
      `${name}.data: expected ${expected[0] * expected[1] * expected[2]} values, got ${mask.data.length}`,
    );
}

/**
 * Arrays a strategy may write its result into instead of allocating new ones: pass a previous
 * result (or its arrays). Allocating a fresh 64×224×224×3 batch costs far more than corrupting it,
 * because every page of a new buffer is faulted in on first write.
 */
export interface MaskingBuffers {
  corrupted?: Float32Array | ImageBatch;
  pixelMask?: Uint8Array | PixelMask;
}

/** The output arrays for a batch: those of `out` when given (checked, mask cleared), else new ones. */
export function outputArrays(
  out: MaskingBuffers | undefined,
  images: Float32Array,
  maskValues: number,
): { corrupted: Float32Array; pixelMask: Uint8Array } {
  const imageValues = images.length;
  if (out !== undefined && (typeof out !== "object" || out === null))
    throw invalidArgument("out", out, "{ corrupted?, pixelMask? } (e.g. a previous result)");
  const c = out?.corrupted;
  let corrupted = c instanceof Float32Array || c === undefined ? c : c.data;
  if (corrupted === undefined) corrupted = new Float32Array(imageValues);
  else if (!(corrupted instanceof Float32Array) || corrupted.length !== imageValues)
    throw invalidArgument("out.corrupted", corrupted, `a Float32Array of ${imageValues} values`);
  else if (corrupted.buffer === images.buffer)
    // Replacement reads the clean partner images while the corrupted ones are written.
    throw new ConfigError(
      "out.corrupted: expected an array that does not share memory with the images",
    );
  const m = out?.pixelMask;
  let pixelMask = m instanceof Uint8Array || m === undefined ? m : m.data;
  if (pixelMask === undefined) pixelMask = new Uint8Array(maskValues);
  else if (!(pixelMask instanceof Uint8Array) || pixelMask.length !== maskValues)
    throw invalidArgument("out.pixelMask", pixelMask, `a Uint8Array of ${maskValues} values`);
  else pixelMask.fill(0);
  return { corrupted, pixelMask };
}
