// @sit/data throughput: `npx tsx tools/bench/data.ts` prints JSON.
// Two-view batches per second (batch 64) with SiT's transform for CIFAR-shaped data (a CIFAR-10
// binary file of 32-px images, output 32 px, and up-sampled to 224 px as in SiT v3) and for a
// temporary folder of 224-px JPEGs (decoded by sharp in libuv threads or in a DecodePool), on the
// wasm and cpu backends. Also reported: decoding alone, and the transform alone.
// Options (env): BENCH_BATCHES (timed batches per case, default 6), BENCH_BACKENDS (default "wasm,cpu").
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import sharp from "sharp";
import { type BackendName, Rng } from "../../packages/core/src/index";
import { initBackend } from "../../packages/core/src/node";
import {
  DataLoader,
  type Dataset,
  type Sample,
  disposeBatch,
  sitTwoViewTransform,
} from "../../packages/data/src/index";
import { CifarDataset, DecodePool, ImageFolderDataset } from "../../packages/data/src/node";

const BATCH = 64;
const TIMED = Number(process.env.BENCH_BATCHES ?? 6);
const BACKENDS = (process.env.BENCH_BACKENDS ?? "wasm,cpu").split(",") as BackendName[];

async function makeCifar(dir: string, n: number): Promise<void> {
  const rng = Rng.seed(1);
  const records = Buffer.alloc(n * 3073);
  for (let i = 0; i < n; i++) {
    records[i * 3073] = i % 10;
    for (let k = 1; k < 3073; k++) records[i * 3073 + k] = rng.int(0, 256);
  }
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "test_batch.bin"), records);
}

/** Photo-like 224-px JPEGs: smooth colour gradients plus mild noise (about 15–25 kB each). */
async function makeJpegs(root: string, n: number): Promise<void> {
  const rng = Rng.seed(2);
  for (let i = 0; i < n; i++) {
    const dir = join(root, `class${i % 10}`);
    mkdirSync(dir, { recursive: true });
    const px = Buffer.alloc(224 * 224 * 3);
    const [a, b, c] = [rng.uniform(0, 255), rng.uniform(0, 255), rng.uniform(0, 255)];
    for (let y = 0; y < 224; y++)
      for (let x = 0; x < 224; x++) {
        const o = (y * 224 + x) * 3;
        px[o] = (a + x + rng.int(0, 24)) % 256;
        px[o + 1] = (b + y + rng.int(0, 24)) % 256;
        px[o + 2] = (c + ((x * y) >> 7) + rng.int(0, 24)) % 256;
      }
    await sharp(px, { raw: { width: 224, height: 224, channels: 3 } })
      .jpeg({ quality: 90 })
      .toFile(join(dir, `${i}.jpg`));
  }
}

async function loaderRate(
  ds: Dataset,
  size: number,
  execution: "auto" | "tensor",
): Promise<{ batchesPerSec: number; msPerBatch: number }> {
  const loader = new DataLoader(ds, {
    transform: sitTwoViewTransform({ size, execution }),
    batchSize: BATCH,
    seed: 0,
    dropLast: true,
    prefetch: 2,
  });
  let count = 0;
  let start = 0;
  for (let epoch = 0; count <= TIMED; epoch++) {
    for await (const batch of loader.epoch(epoch)) {
      disposeBatch(batch);
      if (count === 0) start = performance.now(); // first batch is warm-up (kernel compilation, pools)
      count++;
      if (count > TIMED) break;
    }
  }
  const ms = (performance.now() - start) / TIMED;
  return { batchesPerSec: 1000 / ms, msPerBatch: ms };
}

async function decodeRate(ds: Dataset): Promise<number> {
  const n = Math.min(ds.length, 256);
  const start = performance.now();
  const inFlight = 32;
  for (let i = 0; i < n; i += inFlight)
    await Promise.all(Array.from({ length: Math.min(inFlight, n - i) }, (_, k) => ds.get(i + k)));
  return (n / (performance.now() - start)) * 1000;
}

async function transformMs(
  samples: Sample[],
  size: number,
  execution: "auto" | "tensor",
): Promise<number> {
  const t = sitTwoViewTransform({ size, execution });
  const rng = Rng.seed(3);
  tf.dispose(t.apply(samples, rng)); // warm-up
  const start = performance.now();
  for (let i = 0; i < 2; i++) tf.dispose(t.apply(samples, rng));
  return (performance.now() - start) / 2;
}

async function main(): Promise<void> {
  // The machine may be shared: the load averages say how contended the numbers are.
  const loadAverageBefore = loadavg();
  const tmp = mkdtempSync(join(tmpdir(), "sit-bench-data-"));
  try {
    const cifarDir = join(tmp, "cifar");
    await makeCifar(cifarDir, 1024);
    const jpegDir = join(tmp, "jpegs");
    await makeJpegs(jpegDir, 448);
    const cifar = new CifarDataset(cifarDir, "cifar-10", { split: "test" });
    const pool = new DecodePool(Math.max(1, availableParallelism()));
    const folderLibuv = new ImageFolderDataset(jpegDir);
    const folderPool = new ImageFolderDataset(jpegDir, { pool });
    const decode = {
      cifarRecordsPerSec: await decodeRate(cifar),
      jpeg224ImagesPerSecLibuv: await decodeRate(folderLibuv),
      jpeg224ImagesPerSecWorkers: await decodeRate(folderPool),
    };
    const cifarSamples = Array.from({ length: BATCH }, (_, i) => cifar.get(i));
    const jpegSamples = await Promise.all(
      Array.from({ length: BATCH }, (_, i) => folderLibuv.get(i)),
    );
    const results: Record<string, unknown>[] = [];
    for (const backend of BACKENDS) {
      await initBackend(backend, { log: false });
      const cases: [string, Dataset, number, Sample[], "auto" | "tensor"][] = [
        ["cifar32->32", cifar, 32, cifarSamples, "auto"],
        ["cifar32->32 (tfjs-ops path)", cifar, 32, cifarSamples, "tensor"],
        ["cifar32->224", cifar, 224, cifarSamples, "auto"],
        ["imagefolder224-libuv", folderLibuv, 224, jpegSamples, "auto"],
        ["imagefolder224-workers", folderPool, 224, jpegSamples, "auto"],
      ];
      for (const [name, ds, size, samples, execution] of cases) {
        const rate = await loaderRate(ds, size, execution);
        const transform = name.endsWith("workers")
          ? undefined
          : await transformMs(samples, size, execution);
        results.push({
          backend,
          case: name,
          execution: execution === "auto" ? "host (JS loops)" : "tfjs ops",
          batch: BATCH,
          outputPx: size,
          ...rate,
          transformOnlyMsPerBatch: transform,
        });
        console.error(`${backend} ${name}: ${rate.batchesPerSec.toFixed(2)} batches/s`);
      }
    }
    await pool.close();
    cifar.close();
    console.log(
      JSON.stringify(
        {
          bench: "data",
          transform:
            "sitTwoViewTransform (RRC bicubic, flip, jitter p0.8, grayscale 0.2, blur 1.0/0.1, solarize 0.2, ImageNet norm)",
          cores: availableParallelism(),
          loadAverageBefore,
          loadAverageAfter: loadavg(),
          decode,
          results,
        },
        null,
        2,
      ),
    );
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

await main();
