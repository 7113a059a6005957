import * as tf from "@tensorflow/tfjs";
import { ConfigError, ShapeError, checkNumber } from "@sit/core";

/**
 * The 1-D Gaussian kernel of torchvision's `_get_gaussian_kernel1d`: taps at
 * −(k−1)/2 … (k−1)/2, `exp(−x²/2σ²)`, normalised to sum 1.
 */
export function gaussianKernel1d(kernelSize: number, sigma: number): Float32Array {
  checkNumber("kernelSize", kernelSize, { min: 1, integer: true });
  if (kernelSize % 2 !== 1)
    throw new ConfigError(`kernelSize: expected an odd integer, got ${kernelSize}`);
  checkNumber("sigma", sigma, { min: 0, minExclusive: true });
  const half = (kernelSize - 1) / 2;
  const k = new Float32Array(kernelSize);
  let sum = 0;
  for (let i = 0; i < kernelSize; i++) {
    const x = Math.fround(-half + i);
    const v = Math.fround(Math.exp(Math.fround(-0.5 * Math.fround((x / sigma) ** 2))));
    k[i] = v;
    sum += v;
  }
  const s = Math.fround(sum);
  for (let i = 0; i < kernelSize; i++) k[i] = Math.fround(k[i] / s);
  return k;
}

/**
 * Kernel size used for a σ when none is given: covers ±3σ, `2·ceil(3σ) + 1`, reduced if needed
 * so that reflect padding fits the image (`(k−1)/2 < min(H, W)`).
 */
export function blurKernelSize(sigma: number, height: number, width: number): number {
  checkNumber("sigma", sigma, { min: 0, minExclusive: true });
  let k = 2 * Math.ceil(3 * sigma) + 1;
  const maxHalf = Math.min(height, width) - 1;
  if ((k - 1) / 2 > maxHalf) k = 2 * maxHalf + 1;
  return Math.max(k, 1);
}

/**
 * Gaussian blur of an NHWC batch with one σ per image (or one for all): reflect padding and a
 * separable kernel, as torchvision's tensor `gaussian_blur`. Per-image kernels run as a single
 * depthwise convolution by moving the batch into the channel axis. Each image's kernel size is
 * `kernelSize` when given, else {@link blurKernelSize} of its own σ (smaller kernels are centred
 * in the batch's largest one with zero taps around them, which is the same operation).
 */
export function gaussianBlur(
  x: tf.Tensor4D,
  sigma: number | ArrayLike<number>,
  kernelSize?: number,
): tf.Tensor4D {
  if (x.rank !== 4) throw new ShapeError(`x: expected NHWC images, got [${x.shape}]`);
  const [batch, height, width, channels] = x.shape;
  const sigmas =
    typeof sigma === "number" ? new Array<number>(batch).fill(sigma) : Array.from(sigma);
  if (sigmas.length !== batch)
    throw new ShapeError(`sigma: expected ${batch} values (one per image), got ${sigmas.length}`);
  sigmas.forEach((s, i) => {
    checkNumber(`sigma[${i}]`, s, { min: 0, minExclusive: true });
  });
  const sizes = sigmas.map((s) => kernelSize ?? blurKernelSize(s, height, width));
  const k = Math.max(...sizes);
  checkNumber("kernelSize", k, { min: 1, integer: true });
  const half = (k - 1) / 2;
  if (k % 2 !== 1 || half >= height || half >= width)
    throw new ConfigError(
      `kernelSize: expected an odd size whose half (reflect padding) is below the image size ${height}×${width}, got ${k}`,
    );
  if (batch === 0) return x.clone();
  const depth = batch * channels;
  // One kernel per (image, channel) pair, laid out in the order of the folded channel axis.
  const taps = new Float32Array(k * depth);
  for (let b = 0; b < batch; b++) {
    const kernel = gaussianKernel1d(sizes[b], sigmas[b]);
    const shift = (k - sizes[b]) / 2;
    for (let c = 0; c < channels; c++)
      for (let i = 0; i < sizes[b]; i++) taps[(i + shift) * depth + b * channels + c] = kernel[i];
  }
  return tf.tidy(() => {
    // [B,H,W,C] → [1,H,W,B·C]
    const folded = x.transpose([1, 2, 0, 3]).reshape([1, height, width, depth]) as tf.Tensor4D;
    const padded = tf.mirrorPad(
      folded,
      [
        [0, 0],
        [half, half],
        [half, half],
        [0, 0],
      ],
      "reflect",
    );
    const vertical = tf.tensor4d(taps, [k, 1, depth, 1]);
    const horizontal = tf.tensor4d(taps, [1, k, depth, 1]);
    // torchvision convolves along the width first, then the height.
    const blurred = tf.depthwiseConv2d(
      tf.depthwiseConv2d(padded, horizontal, 1, "valid"),
      vertical,
      1,
      "valid",
    );
    return blurred.reshape([height, width, batch, channels]).transpose([2, 0, 1, 3]) as tf.Tensor4D;
  });
}
