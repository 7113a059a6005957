import * as tf from "@tensorflow/tfjs";
import { ConfigError, type Rng, checkNumber, isHostBackend } from "@sit/core";
import type { Sample } from "../types";
import { type HostPackedBatch, type PackedBatch, packSamples, packSamplesHost } from "./batch";
import { type CropBox, checkRange, resizeCenterCropRegion, sampleResizedCrop } from "./geometry";
import { type HostImages, hostResample } from "./host";
import type { TensorOp } from "./ops";
import { type Interpolation, type SampleRegion, resampleRegions } from "./resample";

/** Output size: one number for square images or `[height, width]`. */
export type Size = number | readonly [number, number];

function toSize(name: string, size: Size): [number, number] {
  const [h, w] = typeof size === "number" ? [size, size] : size;
  checkNumber(`${name}[0]`, h, { min: 1, integer: true });
  checkNumber(`${name}[1]`, w, { min: 1, integer: true });
  return [h, w];
}

/**
 * The first stage of a view: turns a packed batch (images of possibly different sizes) into a
 * fixed-size NHWC tensor, e.g. by a random resized crop or a resize + centre crop.
 */
export interface Sampler {
  readonly size: readonly [number, number];
  sample(batch: PackedBatch, rng: Rng): tf.Tensor4D;
  /** The same on a JS-memory batch, with the same draws (host path of the cpu/wasm backends). */
  sampleHost?(batch: HostPackedBatch, rng: Rng): HostImages;
}

/** Options of {@link RandomResizedCrop}. */
export interface RandomResizedCropOptions {
  size: Size;
  /** Area fraction range; default [0.08, 1] (torchvision); SiT uses [0.2, 1]. */
  scale?: readonly [number, number];
  /** Aspect-ratio range; default [3/4, 4/3]. */
  ratio?: readonly [number, number];
  /** Default "bilinear" (matches the torchvision tensor fixture); "bicubic" as SiT's PIL recipe. */
  interpolation?: Interpolation;
}

/**
 * torchvision's `RandomResizedCrop`: a box drawn by {@link sampleResizedCrop} per image (10
 * tries + centre fallback), resized to `size` without antialiasing. Draws per image: the box.
 */
export class RandomResizedCrop implements Sampler {
  readonly size: readonly [number, number];
  readonly scale: readonly [number, number];
  readonly ratio: readonly [number, number];
  readonly interpolation: Interpolation;
  constructor(options: RandomResizedCropOptions) {
    this.size = toSize("size", options.size);
    this.scale = checkRange("scale", options.scale ?? [0.08, 1], { positive: true, max: 1 });
    this.ratio = checkRange("ratio", options.ratio ?? [3 / 4, 4 / 3], { positive: true });
    this.interpolation = options.interpolation ?? "bilinear";
  }
  /** One crop box per image of the given sizes. */
  sampleBoxes(rng: Rng, heights: ArrayLike<number>, widths: ArrayLike<number>): CropBox[] {
    const boxes: CropBox[] = [];
    for (let i = 0; i < heights.length; i++)
      boxes.push(sampleResizedCrop(rng, heights[i], widths[i], this.scale, this.ratio));
    return boxes;
  }
  sample(batch: PackedBatch, rng: Rng): tf.Tensor4D {
    const boxes = this.sampleBoxes(rng, batch.heights, batch.widths);
    return resampleRegions(batch.images, boxes, this.size[0], this.size[1], this.interpolation);
  }
  sampleHost(batch: HostPackedBatch, rng: Rng): HostImages {
    const boxes = this.sampleBoxes(rng, batch.heights, batch.widths);
    return hostResample(batch.images, boxes, this.size[0], this.size[1], this.interpolation);
  }
}

/**
 * Evaluation geometry: resize the shorter side to `resize` (default `round(size/0.875)`, i.e.
 * 256 for 224), then take the centre `size` crop (torchvision `Resize` + `CenterCrop`). No
 * randomness. With `resize` equal to `size`, square images are simply resized.
 */
export class ResizeCenterCrop implements Sampler {
  readonly size: readonly [number, number];
  readonly resize: number;
  readonly interpolation: Interpolation;
  constructor(options: { size: Size; resize?: number; interpolation?: Interpolation }) {
    this.size = toSize("size", options.size);
    this.resize = options.resize ?? Math.round(Math.max(...this.size) / 0.875);
    checkNumber("resize", this.resize, { min: Math.max(...this.size), integer: true });
    this.interpolation = options.interpolation ?? "bilinear";
  }
  private regions(heights: Int32Array, widths: Int32Array): SampleRegion[] {
    const regions: SampleRegion[] = [];
    for (let i = 0; i < heights.length; i++)
      regions.push(resizeCenterCropRegion(heights[i], widths[i], this.resize, this.size));
    return regions;
  }
  sample(batch: PackedBatch): tf.Tensor4D {
    const regions = this.regions(batch.heights, batch.widths);
    return resampleRegions(batch.images, regions, this.size[0], this.size[1], this.interpolation);
  }
  sampleHost(batch: HostPackedBatch): HostImages {
    const regions = this.regions(batch.heights, batch.widths);
    return hostResample(batch.images, regions, this.size[0], this.size[1], this.interpolation);
  }
}

/** One view: a sampler followed by tensor operations, applied in order. */
export class ViewPipeline {
  constructor(
    readonly sampler: Sampler,
    readonly ops: readonly TensorOp[] = [],
  ) {}
  /** Apply to a packed batch; intermediate tensors are disposed, the result belongs to the caller. */
  apply(batch: PackedBatch, rng: Rng): tf.Tensor4D {
    let x = this.sampler.sample(batch, rng);
    for (const op of this.ops) {
      const y = op.apply(x, rng);
      if (y !== x) x.dispose();
      x = y;
    }
    return x;
  }

  /** Whether every stage has a host implementation. */
  get hostCapable(): boolean {
    return (
      this.sampler.sampleHost !== undefined && this.ops.every((op) => op.applyHost !== undefined)
    );
  }

  /** Apply on the host path (same draws as {@link ViewPipeline.apply}); returns one tensor. */
  applyHost(batch: HostPackedBatch, rng: Rng): tf.Tensor4D {
    if (!this.sampler.sampleHost) throw new ConfigError("sampler: has no host implementation");
    let x = this.sampler.sampleHost(batch, rng);
    for (const op of this.ops) x = op.applyHost!(x, rng);
    return tf.tensor4d(x.data, [x.n, x.height, x.width, x.channels]);
  }
}

/**
 * Where a transform computes: "tensor" runs tfjs operations on the active backend (GPU
 * backends); "host" runs the same operations as loops in JS memory and creates one tensor per
 * view (much faster on the cpu and wasm backends, where tfjs is slow at per-pixel image work);
 * "auto" (default) picks "host" when the active backend is cpu or wasm. Both give the same
 * results up to float rounding (both are pinned to the torchvision fixtures) from the same draws.
 */
export type TransformExecution = "auto" | "tensor" | "host";

/** What a transform's batches hold: several augmented `views`, or one `images` tensor. */
export type TransformOutput = "views" | "images";

/**
 * A batch transform: decoded samples → one tensor per view. Each view draws from its own child
 * of `rng` (split in view order), so adding ops to one view never changes the other's draws.
 * `channels` 3 turns grayscale datasets into RGB before anything else (like PIL's
 * `convert("RGB")`); 1 keeps native 1-channel images (saturation, hue and grayscale are then
 * no-ops); undefined keeps what the samples have.
 */
export class BatchTransform<O extends TransformOutput = TransformOutput> {
  constructor(
    readonly output: O,
    readonly views: readonly ViewPipeline[],
    readonly channels?: 1 | 3,
    readonly execution: TransformExecution = "auto",
  ) {
    if (execution !== "auto" && execution !== "tensor" && execution !== "host")
      throw new ConfigError(
        `execution: expected "auto", "tensor" or "host", got ${JSON.stringify(execution)}`,
      );
    if (views.length === 0) throw new ConfigError("views: expected at least one view, got []");
    if (output === "images" && views.length !== 1)
      throw new ConfigError(
        `views: expected exactly 1 view for output "images", got ${views.length}`,
      );
  }
  /** Transform decoded samples; returns one NHWC tensor per view (the caller disposes them). */
  apply(samples: readonly Sample[], rng: Rng): tf.Tensor4D[] {
    if (this.usesHost()) {
      const host = packSamplesHost(samples, this.channels);
      return this.views.map((view) => view.applyHost(host, rng.split()));
    }
    const packed = packSamples(samples, this.channels);
    try {
      return this.views.map((view) => view.apply(packed, rng.split()));
    } finally {
      packed.images.dispose();
    }
  }

  /** Whether `apply` takes the host path now (depends on the active backend for "auto"). */
  usesHost(): boolean {
    if (this.execution === "tensor" || !this.views.every((v) => v.hostCapable)) return false;
    if (this.execution === "host") return true;
    return isHostBackend();
  }
}
