import * as tf from "@tensorflow/tfjs";
import { ShapeError, describeValue } from "@sit/core";

/**
 * A per-token mask: a `[B, N]` tensor (bool, or numeric 0/1), rows of booleans or 0/1 numbers,
 * or one flat array of B·N entries in row-major order. 1 / true = masked.
 */
export type TokenMaskInput =
  | tf.Tensor
  | ArrayLike<number | boolean>[]
  | Uint8Array
  | Float32Array
  | Int32Array
  | (number | boolean)[];

/**
 * Normalise a token mask to a float32 0/1 tensor `[batch, numTokens]` (a new tensor, outside any
 * gradient: masks are data). Throws a ShapeError naming the expected shape, or a non-0/1 value.
 */
export function toTokenMask(mask: TokenMaskInput, batch: number, numTokens: number): tf.Tensor2D {
  let values: Float32Array;
  if (mask instanceof tf.Tensor) {
    if (mask.rank !== 2 || mask.shape[0] !== batch || mask.shape[1] !== numTokens)
      throw new ShapeError(
        `mask: expected shape [${batch}, ${numTokens}], got ${describeValue(mask)}`,
      );
    values = Float32Array.from(mask.dataSync() as ArrayLike<number>, Number);
  } else if (Array.isArray(mask) && mask.length > 0 && typeof mask[0] === "object") {
    const rows = mask as ArrayLike<number | boolean>[];
    if (rows.length !== batch || rows.some((r) => r?.length !== numTokens))
      throw new ShapeError(
        `mask: expected ${batch} rows of ${numTokens} entries, got ${rows.length} rows of lengths [${rows.map((r) => r?.length)}]`,
      );
    values = new Float32Array(batch * numTokens);
    rows.forEach((r, i) => {
      for (let j = 0; j < numTokens; j++) values[i * numTokens + j] = Number(r[j]);
    });
  } else if (ArrayBuffer.isView(mask) || Array.isArray(mask)) {
    const flat = mask as ArrayLike<number | boolean>;
    if (flat.length !== batch * numTokens)
      throw new ShapeError(
        `mask: expected ${batch}·${numTokens} = ${batch * numTokens} entries (row-major [B, N]), got ${flat.length}`,
      );
    values = Float32Array.from(flat as ArrayLike<number>, Number);
  } else {
    throw new ShapeError(
      `mask: expected a [${batch}, ${numTokens}] tensor or array, got ${describeValue(mask)}`,
    );
  }
  for (let i = 0; i < values.length; i++)
    if (values[i] !== 0 && values[i] !== 1)
      throw new ShapeError(`mask: expected only 0/1 (or booleans), got ${values[i]} at index ${i}`);
  return tf.tensor2d(values, [batch, numTokens]);
}
