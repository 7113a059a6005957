// The messages between the page (main thread) and the training worker. Everything here is plain
// data (typed arrays travel as transferables), so the protocol is the whole contract between them.
import type { RunNormalize } from "@sit/data";

/** A set of images held as uint8 HWC pixels, back to back. */
export interface ImageSet {
  images: Uint8Array;
  count: number;
  height: number;
  width: number;
  /** 1 (grayscale) or 3 (RGB). */
  channels: 1 | 3;
  /** One label per image, when known (k-NN needs them). */
  labels?: Int32Array;
  classNames?: string[];
}

/** What the worker trains on: images, held-out images (k-NN queries, pictures), and where they came from. */
export interface TrainingData {
  /** `fashion-mnist-bundled` (what `sit pretrain` calls the same images) or `dropped` (the visitor's). */
  source: "fashion-mnist-bundled" | "dropped";
  train: ImageSet;
  heldOut: ImageSet;
}

/** How often the worker reports more than the losses. */
export interface ReportEvery {
  /** Reconstructions and attention maps every this many steps. */
  picturesSteps: number;
  /** k-NN accuracy every this many steps (0: only the random-init value). */
  knnSteps: number;
}

/** The page's `sit pretrain` config (the same shape as a `--config` file) and the run's data. */
export interface StartRun {
  type: "start";
  config: PretrainConfigJson;
  data: TrainingData;
  every: ReportEvery;
  /** Stop after this many steps (the browser test); absent: the config's schedule. */
  maxSteps?: number;
  /** A checkpoint (safetensors bytes) to continue from instead of starting from scratch. */
  resume?: { name: string; bytes: Uint8Array };
}

/** A `sit pretrain --config` file: what the page trains with and what it hands to the CLI. */
export interface PretrainConfigJson {
  recipe: "sit";
  backend?: string;
  out?: string;
  data: Record<string, unknown> & { dataset: string; channels: 1 | 3; normalize: RunNormalize };
  config: Record<string, unknown> & {
    backbone: Record<string, unknown>;
    optim: Record<string, unknown> & { batchSize: number };
    gmml?: Record<string, unknown>;
  };
  train?: Record<string, unknown>;
}

export type ToWorker =
  | {
      type: "init";
      backend: "auto" | "webgpu" | "wasm" | "cpu";
      /** Accept a software WebGPU adapter (SwiftShader, lavapipe): slower than wasm, but it runs WGSL. */
      allowSoftwareAdapter: boolean;
    }
  | StartRun
  | { type: "pause" }
  | { type: "resume" }
  | { type: "reset" }
  /** Ask for a checkpoint of the run as it stands (answered by a `checkpoint` message). */
  | { type: "save" }
  /** Read a checkpoint file's config and progress (answered by `opened`); training starts with `start`. */
  | { type: "open"; name: string; bytes: Uint8Array };

/** The state of the worker's run, as the buttons need it. */
export type RunState = "no-backend" | "idle" | "preparing" | "running" | "paused" | "finished";

/** One image batch drawn for the page: NHWC float32 in the network's (normalised) space. */
export interface PictureBatch {
  data: Float32Array;
  shape: [number, number, number, number];
}

export type FromWorker =
  | {
      type: "backend";
      name: string;
      /** Adapter, threads, why others were skipped. */
      detail: string;
      /** WASM: XNNPACK threads in use. */
      threads?: number;
      /** WebGPU: the adapter's description. */
      adapter?: string;
      /** @sit/kernels' operations with a kernel of this backend (as under Node). */
      kernels: string[];
    }
  | { type: "state"; state: RunState; message?: string }
  | {
      type: "step";
      step: number;
      epoch: number;
      totalSteps: number;
      loss: number;
      terms: Record<string, number>;
      lr: number;
      imagesPerSec: number;
      elapsedSec: number;
    }
  | {
      type: "reconstruction";
      step: number;
      original: PictureBatch;
      corrupted: PictureBatch;
      reconstruction: PictureBatch;
      /** Normalisation to undo for display. */
      stats: { mean: number[]; std: number[] } | null;
    }
  | {
      type: "attention";
      step: number;
      images: PictureBatch;
      stats: { mean: number[]; std: number[] } | null;
      /** Per image: mean over heads of the CLS token's attention to each patch, ÷ uniform (1/N). */
      maps: Float32Array[];
      grid: [number, number];
      block: number;
      heads: number;
    }
  | { type: "knn"; step: number; top1: number; k: number; trainRows: number; testRows: number }
  | {
      type: "checkpoint";
      step: number;
      name: string;
      bytes: Uint8Array;
      config: PretrainConfigJson;
    }
  | { type: "opened"; name: string; step: number; config: PretrainConfigJson }
  | { type: "error"; message: string };
