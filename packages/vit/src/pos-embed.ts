import * as tf from "@tensorflow/tfjs";
import { ShapeError } from "@sit/core";
import { linear } from "@sit/kernels";

// PyTorch's bicubic convolution constant (upsample_bicubic2d, A = −0.75).
const A = -0.75;
const cubicNear = (x: number) => ((A + 2) * x - (A + 3)) * x * x + 1; // |x| ≤ 1
const cubicFar = (x: number) => ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; // 1 < |x| < 2

/**
 * The `[outSize, inSize]` matrix of 1-D bicubic resampling exactly as PyTorch's
 * `F.interpolate(mode="bicubic", align_corners=False, scale_factor=s)` computes it: source
 * coordinate `(i + 0.5)/s − 0.5`, four taps with A = −0.75, indices clamped to the border. DINO
 * (and SiT) call it with `s = (outSize + 0.1)/inSize` — the `+0.1` avoids a floating-point
 * off-by-one in the output size and shifts the sampling grid slightly; `offset` is that 0.1.
 */
export function bicubicResampleMatrix(inSize: number, outSize: number, offset = 0.1): Float32Array {
  const m = new Float32Array(outSize * inSize);
  const step = inSize / (outSize + offset); // = 1 / scale_factor
  for (let i = 0; i < outSize; i++) {
    const real = step * (i + 0.5) - 0.5;
    const base = Math.floor(real);
    const t = real - base;
    const coeffs = [cubicFar(t + 1), cubicNear(t), cubicNear(1 - t), cubicFar(2 - t)];
    for (let j = 0; j < 4; j++) {
      const src = Math.min(Math.max(base - 1 + j, 0), inSize - 1);
      m[i * inSize + src] += coeffs[j];
    }
  }
  return m;
}

/**
 * The `[oh·ow, ih·iw]` matrix that resamples a row-major `ih × iw` grid to `oh × ow`
 * (separable bicubic: the Kronecker product of the two 1-D matrices).
 */
export function bicubicGridMatrix(from: [number, number], to: [number, number]): tf.Tensor2D {
  const [ih, iw] = from;
  const [oh, ow] = to;
  const mh = bicubicResampleMatrix(ih, oh);
  const mw = bicubicResampleMatrix(iw, ow);
  const k = new Float32Array(oh * ow * ih * iw);
  for (let i = 0; i < oh; i++)
    for (let j = 0; j < ow; j++)
      for (let a = 0; a < ih; a++) {
        const wh = mh[i * ih + a];
        if (wh === 0) continue;
        for (let b = 0; b < iw; b++) k[(i * ow + j) * ih * iw + a * iw + b] = wh * mw[j * iw + b];
      }
  return tf.tensor2d(k, [oh * ow, ih * iw]);
}

/**
 * Resample a ViT position embedding `[1, 1 + ih·iw, D]` (CLS entry first) to an `oh × ow` patch
 * grid, DINO-style: the CLS entry is kept, the patch entries are interpolated bicubically as an
 * image (see {@link bicubicResampleMatrix}). The identity (the same tensor) when the grids are
 * equal. Differentiable with respect to `posEmbed` (it is one matrix product).
 */
export function interpolatePosEmbed(
  posEmbed: tf.Tensor,
  from: [number, number],
  to: [number, number],
): tf.Tensor3D {
  const [ih, iw] = from;
  const d = posEmbed.shape[2] as number;
  if (posEmbed.rank !== 3 || posEmbed.shape[0] !== 1 || posEmbed.shape[1] !== 1 + ih * iw)
    throw new ShapeError(
      `interpolatePosEmbed posEmbed: expected shape [1, ${1 + ih * iw}, D] for a ${ih}×${iw} grid, got [${posEmbed.shape}]`,
    );
  if (to[0] === ih && to[1] === iw) return posEmbed as tf.Tensor3D;
  return tf.tidy(() => {
    const cls = tf.slice(posEmbed, [0, 0, 0], [1, 1, d]);
    const grid = tf.reshape(tf.slice(posEmbed, [0, 1, 0], [1, ih * iw, d]), [ih * iw, d]);
    const resampled = linear(bicubicGridMatrix(from, to), grid);
    return tf.concat([cls, tf.reshape(resampled, [1, to[0] * to[1], d])], 1) as tf.Tensor3D;
  });
}
