import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import { ConfigError, IOError, checkNumber } from "@sit/core";
import sharp from "sharp";
import type { Sample } from "../types";

/** How image files are decoded. */
export interface DecodeOptions {
  /** 3 (default): every image becomes RGB (grayscale replicated, alpha dropped); 1: grayscale. */
  channels?: 1 | 3;
  /**
   * Resize at decode time so that the shorter side is this many pixels (sharp's Lanczos-3,
   * antialiased), keeping the aspect ratio. Bounds memory and transform cost for large photos;
   * default: keep the stored size.
   */
  resizeShorter?: number;
}

export function checkDecodeOptions(
  options: DecodeOptions,
): Required<Pick<DecodeOptions, "channels">> & DecodeOptions {
  const channels = options.channels ?? 3;
  if (channels !== 1 && channels !== 3)
    throw new ConfigError(`channels: expected 1 or 3, got ${JSON.stringify(channels)}`);
  if (options.resizeShorter !== undefined)
    checkNumber("resizeShorter", options.resizeShorter, { min: 1, integer: true });
  return { ...options, channels };
}

/**
 * Decode one image file (JPEG, PNG, WebP, TIFF, GIF … whatever sharp/libvips reads) into HWC
 * uint8. EXIF orientation is not applied (as PIL). Failures — missing, truncated or corrupt
 * files — raise an IOError that names the file.
 */
export async function decodeImageFile(path: string, options: DecodeOptions = {}): Promise<Sample> {
  const { channels, resizeShorter } = checkDecodeOptions(options);
  try {
    let img = sharp(path, { failOn: "warning" });
    if (resizeShorter !== undefined)
      img = img.resize(resizeShorter, resizeShorter, { fit: "outside" });
    img = img.removeAlpha().toColourspace(channels === 3 ? "srgb" : "b-w");
    const { data, info } = await img.raw().toBuffer({ resolveWithObject: true });
    return {
      image: new Uint8Array(data.buffer, data.byteOffset, data.length),
      height: info.height,
      width: info.width,
      channels: info.channels,
    };
  } catch (err) {
    throw new IOError(`${path}: cannot decode image (${(err as Error).message})`, { cause: err });
  }
}

// The worker's code is a string evaluated by Node (CommonJS or ESM, depending on the parent's
// flags), so it runs the same from the TypeScript sources (tests) and from either build; it
// loads its modules with dynamic import(), valid in both, sharp by absolute URL.
const WORKER_SOURCE = `
(async () => {
  const { parentPort, workerData } = await import("node:worker_threads");
  const sharpModule = await import(workerData.sharpUrl);
  const sharp = sharpModule.default ?? sharpModule;
  sharp.concurrency(1);
  parentPort.on("message", async (job) => {
    try {
      let img = sharp(job.path, { failOn: "warning" });
      if (job.resizeShorter) img = img.resize(job.resizeShorter, job.resizeShorter, { fit: "outside" });
      img = img.removeAlpha().toColourspace(job.channels === 3 ? "srgb" : "b-w");
      const { data, info } = await img.raw().toBuffer({ resolveWithObject: true });
      const copy = new Uint8Array(data.length);
      copy.set(data);
      parentPort.postMessage({ id: job.id, ok: true, data: copy, height: info.height, width: info.width, channels: info.channels }, [copy.buffer]);
    } catch (err) {
      parentPort.postMessage({ id: job.id, ok: false, message: String((err && err.message) || err) });
    }
  });
})();
`;

interface Job {
  resolve: (s: Sample) => void;
  reject: (e: Error) => void;
  path: string;
}

/**
 * A pool of worker threads that decode image files with sharp (one image at a time per worker,
 * libvips single-threaded inside each), so decoding runs in parallel with the main thread's
 * augmentation and training step. Jobs are assigned round-robin to the least-loaded worker.
 * Call {@link DecodePool.close} when done (an open pool keeps the process alive).
 */
export class DecodePool {
  readonly size: number;
  private readonly workers: Worker[] = [];
  private readonly pending: Map<number, Job>[] = [];
  private nextId = 0;
  private closed = false;

  constructor(size: number) {
    this.size = checkNumber("size", size, { min: 1, max: 64, integer: true });
    // sharp must be loaded by the main thread before workers load it (shared-library lifetime).
    const sharpUrl = pathToFileURL(
      createRequire(typeof __filename === "string" ? __filename : import.meta.url).resolve("sharp"),
    ).href;
    for (let i = 0; i < size; i++) {
      const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { sharpUrl } });
      const jobs = new Map<number, Job>();
      worker.on(
        "message",
        (m: {
          id: number;
          ok: boolean;
          message?: string;
          data?: Uint8Array;
          height: number;
          width: number;
          channels: number;
        }) => {
          const job = jobs.get(m.id);
          if (!job) return;
          jobs.delete(m.id);
          if (m.ok && m.data)
            job.resolve({ image: m.data, height: m.height, width: m.width, channels: m.channels });
          else job.reject(new IOError(`${job.path}: cannot decode image (${m.message})`));
        },
      );
      worker.on("error", (err) => {
        for (const job of jobs.values())
          job.reject(new IOError(`decode worker failed: ${err.message}`, { cause: err }));
        jobs.clear();
      });
      worker.unref();
      this.workers.push(worker);
      this.pending.push(jobs);
    }
  }

  /** Decode `path` on the least busy worker. */
  decode(path: string, options: DecodeOptions = {}): Promise<Sample> {
    if (this.closed)
      return Promise.reject(new IOError(`decode(${path}): the DecodePool is closed`));
    const { channels, resizeShorter } = checkDecodeOptions(options);
    let w = 0;
    for (let i = 1; i < this.workers.length; i++)
      if (this.pending[i].size < this.pending[w].size) w = i;
    const id = this.nextId++;
    return new Promise<Sample>((resolve, reject) => {
      this.pending[w].set(id, { resolve, reject, path });
      this.workers[w].ref();
      this.workers[w].postMessage({ id, path, channels, resizeShorter });
    }).finally(() => {
      if (this.pending[w].size === 0) this.workers[w].unref();
    });
  }

  /** Stop the workers; pending decodes are rejected. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const jobs of this.pending) {
      for (const job of jobs.values()) job.reject(new IOError(`${job.path}: DecodePool closed`));
      jobs.clear();
    }
    // Referenced again so that the pending exits keep the event loop alive until they happen.
    await Promise.all(
      this.workers.map((w) => {
        w.ref();
        return w.terminate();
      }),
    );
  }
}
