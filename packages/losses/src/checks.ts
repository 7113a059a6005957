import * as tf from "@tensorflow/tfjs";
import { ShapeError, invalidArgument } from "@sit/core";

/** Throw unless `x` is a float32 tensor of the given rank. */
export function checkFloatTensor(
  name: string,
  x: unknown,
  rank: number,
  layout: string,
): tf.Tensor {
  if (!(x instanceof tf.Tensor)) throw invalidArgument(name, x, `a float32 tensor ${layout}`);
  if (x.dtype !== "float32") throw invalidArgument(name, x, `a float32 tensor ${layout}`);
  if (x.rank !== rank)
    throw new ShapeError(
      `${name}: expected a tensor of rank ${rank} ${layout}, got shape [${x.shape.join(", ")}]`,
    );
  if (x.size === 0)
    throw new ShapeError(`${name}: expected a non-empty tensor, got shape [${x.shape.join(", ")}]`);
  return x;
}

/** Throw unless two tensors have the same shape. */
export function checkSameShape(nameA: string, a: tf.Tensor, nameB: string, b: tf.Tensor): void {
  if (!tf.util.arraysEqual(a.shape, b.shape))
    throw new ShapeError(
      `${nameB}: expected the shape of ${nameA} [${a.shape.join(", ")}], got [${b.shape.join(", ")}]`,
    );
}
