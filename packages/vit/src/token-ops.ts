import * as tf from "@tensorflow/tfjs";
import { webgpuTokenOps } from "@sit/kernels";

// The ViT's token plumbing around the blocks as taped operations whose gradients are read off dy
// directly. Composed from add / concat / slice / reshape, tfjs's tape clones every input those
// kernels save for their gradients (one Identity kernel each, every step) and runs their
// reshape / sum gradients; these save nothing. Forward values are the same kernels' outputs.

type CustomGradientFunc = Parameters<typeof tf.customGrad>[0];

/** `tf.customGrad` of a function that saves nothing (its trailing `save` argument is unused). */
function taped<I extends tf.Tensor[]>(
  f: (...inputs: I) => { value: tf.Tensor; gradFunc: (dy: tf.Tensor) => tf.Tensor | tf.Tensor[] },
): (...inputs: I) => tf.Tensor {
  return tf.customGrad(f as unknown as CustomGradientFunc) as unknown as (
    ...inputs: I
  ) => tf.Tensor;
}

/**
 * Tokens `[B, 1 + N, D]` = `[cls; patches] + pos`, from `patches [B, N, D]`, the CLS token
 * `[1, 1, D]` and the position embedding `[1, 1 + N, D]`. Gradients: patches `dy[:, 1:]`, CLS
 * `Σ_b dy[:, 0]`, position embedding `Σ_b dy`.
 */
export function embedTokens(patches: tf.Tensor3D, cls: tf.Tensor, pos: tf.Tensor): tf.Tensor3D {
  // On webgpu one kernel each way (@sit/kernels).
  const fused = webgpuTokenOps();
  if (fused) return fused.embed(patches, cls, pos);
  const [b, n, d] = patches.shape;
  const op = taped((p: tf.Tensor, c: tf.Tensor, e: tf.Tensor) => ({
    // A broadcasting add, not broadcastTo (tfjs's Tile), as the composed version did.
    value: tf.add(tf.concat([tf.add(tf.zeros([b, 1, d]), c), p], 1), e),
    gradFunc: (dy: tf.Tensor) => [
      tf.slice(dy, [0, 1, 0], [b, n, d]),
      tf.sum(tf.slice(dy, [0, 0, 0], [b, 1, d]), 0, true),
      tf.sum(dy, 0, true),
    ],
  }));
  return op(patches, cls, pos) as tf.Tensor3D;
}

/** The CLS token's row of `tokens [B, 1 + N, D]` as `[B, D]`; its gradient is dy padded back. */
export function clsOf(tokens: tf.Tensor3D): tf.Tensor2D {
  const [b, t, d] = tokens.shape;
  const op = taped((x: tf.Tensor) => ({
    value: tf.reshape(tf.slice(x, [0, 0, 0], [b, 1, d]), [b, d]),
    gradFunc: (dy: tf.Tensor) =>
      tf.pad(tf.reshape(dy, [b, 1, d]), [
        [0, 0],
        [0, t - 1],
        [0, 0],
      ]),
  }));
  return op(tokens) as tf.Tensor2D;
}

/** The patch tokens of `tokens [B, 1 + N, D]`: `[B, N, D]`; the gradient is dy padded back. */
export function patchTokensOf(tokens: tf.Tensor3D): tf.Tensor3D {
  const [b, t, d] = tokens.shape;
  const op = taped((x: tf.Tensor) => ({
    value: tf.slice(x, [0, 1, 0], [b, t - 1, d]),
    gradFunc: (dy: tf.Tensor) =>
      tf.pad(dy, [
        [0, 0],
        [1, 0],
        [0, 0],
      ]),
  }));
  return op(tokens) as tf.Tensor3D;
}

/**
 * {@link clsOf} and {@link patchTokensOf} of the same tokens: on webgpu one kernel each way
 * (@sit/kernels), elsewhere those two ops.
 */
export function splitTokens(tokens: tf.Tensor3D): { cls: tf.Tensor2D; patchTokens: tf.Tensor3D } {
  const fused = webgpuTokenOps();
  if (fused) return fused.split(tokens);
  return { cls: clsOf(tokens), patchTokens: patchTokensOf(tokens) };
}
