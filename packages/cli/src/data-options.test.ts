import { createHash } from "node:crypto";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { type Server, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import type { DatasetSource } from "@sit/data";
import { PNG } from "pngjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { downloadNamedDataset } from "./dataset-download";
import { resolveDataset } from "./datasets";
import { type CliIO, EXIT } from "./io";
import { sit, tempDir, tinyConfig, writeConfig } from "./test-support";

// A local HTTP server (127.0.0.1 only) standing in for the datasets' hosts.
const served = new Map<string, Buffer>();
const requested: string[] = [];
let server: Server;
let baseUrl: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    const name = decodeURIComponent((req.url ?? "/").slice(1));
    requested.push(name);
    const body = served.get(name);
    if (!body) res.writeHead(404, "Not Found").end();
    else res.writeHead(200, { "Content-Length": body.length }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  delete process.env.SIT_DATA_MIRROR;
  await new Promise((resolve) => server.close(resolve));
});

/** CIFAR-10 binary batches of `perBatch` records each (label, then 3,072 pixel bytes). */
function cifarBatch(perBatch: number, seed: number): Buffer {
  const rec = (k: number) => {
    const r = Buffer.alloc(3073);
    r[0] = (seed + k) % 10;
    for (let i = 1; i < r.length; i++) r[i] = (i * 7 + seed * 31 + k) % 256;
    return r;
  };
  return Buffer.concat(Array.from({ length: perBatch }, (_, k) => rec(k)));
}

const md5 = (b: Buffer) => createHash("md5").update(b).digest("hex");
const quietIO = (): CliIO & { log: string } => {
  const io = {
    log: "",
    out: (t: string) => {
      io.log += t;
    },
    err: (t: string) => {
      io.log += t;
    },
  };
  return io;
};

describe("sit --download", () => {
  it("a named dataset missing from --data-dir: the error says how to download it", async () => {
    const dir = tempDir();
    const empty = join(dir, "cifar");
    mkdirSync(empty);
    const cfg = writeConfig(dir, tinyConfig(join(dir, "run")));
    const r = await sit("pretrain", "--config", cfg, "--dataset", "cifar10", "--data-dir", empty);
    expect(r.code).toBe(EXIT.failure);
    expect(r.err).toMatch(/data_batch_1\.bin: file not found/);
    expect(r.err).toContain(
      `download it with: sit pretrain --dataset cifar10 --data-dir ${empty} --download`,
    );
  });

  it("refuses a dataset without a source, and a download without --data-dir", async () => {
    const dir = tempDir();
    const cfg = writeConfig(dir, tinyConfig(join(dir, "run")));
    const cars = await sit(
      "pretrain",
      "-c",
      cfg,
      "--dataset",
      "cars",
      "--data-dir",
      dir,
      "--download",
    );
    expect(cars.code).toBe(EXIT.usage);
    expect(cars.err).toMatch(/--download: expected a dataset with a download source .* got "cars"/);
    const noDir = await sit("pretrain", "-c", cfg, "--dataset", "cifar10", "--download");
    expect(noDir.code).toBe(EXIT.usage);
    expect(noDir.err).toMatch(/--data-dir: --download needs the folder to download cifar10 into/);
  });

  it("downloads through downloadDataset with its checksums (a mirror serving other bytes fails)", async () => {
    const dir = tempDir();
    served.set("cifar-10-binary.tar.gz", Buffer.from("not the CIFAR-10 archive"));
    process.env.SIT_DATA_MIRROR = baseUrl;
    requested.length = 0;
    try {
      const cfg = writeConfig(dir, tinyConfig(join(dir, "run")));
      const into = join(dir, "cifar");
      const r = await sit(
        "pretrain",
        "-c",
        cfg,
        "--dataset",
        "cifar10",
        "--data-dir",
        into,
        "--download",
      );
      expect(requested).toEqual(["cifar-10-binary.tar.gz"]);
      expect(r.code).toBe(EXIT.failure);
      expect(r.err).toMatch(
        /cifar-10\/cifar-10-binary\.tar\.gz: md5 mismatch .* expected c32a1d4ab5d03f1284b67883e8d87530/,
      );
      expect(existsSync(join(into, "cifar-10-binary.tar.gz"))).toBe(false);
    } finally {
      delete process.env.SIT_DATA_MIRROR;
    }
  });

  it("fetches, verifies and opens a dataset; the download folder then works as --data-dir", async () => {
    const dir = join(tempDir(), "cifar10");
    const names = [1, 2, 3, 4, 5].map((b) => `data_batch_${b}.bin`).concat("test_batch.bin");
    const bodies = names.map((_, i) => cifarBatch(3, i));
    for (const [i, n] of names.entries()) served.set(n, bodies[i]);
    // In place of the real cifar-10 entry (one archive that unpacks into a sub-folder): the test
    // files, loose, with their md5s.
    const sources: Record<string, DatasetSource> = {
      "cifar-10": {
        name: "cifar-10",
        files: names.map((n, i) => ({ url: `${baseUrl}/${n}`, md5: md5(bodies[i]) })),
        readerDir: ".",
        checksumNote: "test",
      },
    };
    const io = quietIO();
    requested.length = 0;
    const reader = await downloadNamedDataset("cifar10", dir, io, { sources });
    expect(reader).toBe(dir);
    expect(requested.sort()).toEqual([...names].sort());
    expect(io.log).toMatch(/cifar10: 6 file\(s\) fetched, 0 already there/);
    const kind = resolveDataset({ dataset: "cifar10", dataDir: dir });
    expect(kind.open("pretrain").length).toBe(15);
    expect(kind.open("test").length).toBe(3);
    // Again: nothing is fetched.
    requested.length = 0;
    await downloadNamedDataset("cifar10", dir, quietIO(), { sources });
    expect(requested).toEqual([]);
  });

  it("finds the reader's sub-folder inside a download folder given as --data-dir", () => {
    const root = tempDir();
    const reader = join(root, "cifar-10-batches-bin");
    mkdirSync(reader);
    mkdirSync(join(root, ".sit-download"));
    for (const b of [1, 2, 3, 4, 5])
      writeFileSync(join(reader, `data_batch_${b}.bin`), cifarBatch(2, b));
    writeFileSync(join(reader, "test_batch.bin"), cifarBatch(2, 9));
    const kind = resolveDataset({ dataset: "cifar10", dataDir: root });
    expect(kind.root).toBe(reader);
    expect(kind.open("pretrain").length).toBe(10);
  });
});

describe("sit --skip-corrupt", () => {
  /** An image folder of 28 px PNGs (two classes), with one file that is not an image. */
  function imageFolder(root = tempDir(), withBad = true): { root: string; bad: string } {
    for (const [c, cls] of ["cats", "dogs"].entries()) {
      mkdirSync(join(root, cls), { recursive: true });
      for (let i = 0; i < (c === 0 ? 8 : 7); i++) {
        const png = new PNG({ width: 28, height: 28 });
        for (let p = 0; p < png.data.length; p++)
          png.data[p] = p % 4 === 3 ? 255 : (p * (i + 3) + c * 90) % 256;
        writeFileSync(join(root, cls, `${i}.png`), PNG.sync.write(png));
      }
    }
    const bad = join(root, "dogs", "broken.png");
    if (withBad) writeFileSync(bad, "this is not a PNG");
    return { root, bad };
  }

  function config(dir: string, root: string) {
    const cfg = tinyConfig(join(dir, "run"));
    cfg.data = { dataset: root, channels: 3, normalize: "imagenet" };
    (cfg.config as { optim: { epochs: number; batchSize: number } }).optim = {
      ...(cfg.config as { optim: object }).optim,
      epochs: 1,
      batchSize: 8,
    } as never;
    return writeConfig(dir, cfg);
  }

  it("without it one bad image stops the run, naming the file", async () => {
    const { root, bad } = imageFolder();
    const dir = tempDir();
    const r = await sit("pretrain", "-c", config(dir, root));
    expect(r.code).toBe(EXIT.failure);
    expect(r.err).toContain(bad);
  });

  it("evaluations skip too, and say what they skipped", async () => {
    const root = tempDir();
    imageFolder(join(root, "train"), false);
    const { bad } = imageFolder(join(root, "test"));
    const dir = tempDir();
    const pre = await sit("pretrain", "-c", config(dir, root));
    expect(pre.code, pre.err).toBe(EXIT.ok);
    const knn = (...flags: string[]) =>
      sit("knn", "--checkpoint", join(dir, "run"), "--ks", "1", "--no-cache", ...flags);
    const strict = await knn();
    expect(strict.code).toBe(EXIT.failure);
    expect(strict.err).toContain(bad);
    const r = await knn("--skip-corrupt");
    expect(r.code, r.err).toBe(EXIT.ok);
    expect(r.err).toContain(`(--skip-corrupt): ${bad}`);
  });

  it("with it the run completes and lists what it skipped", async () => {
    const { root, bad } = imageFolder();
    const dir = tempDir();
    const r = await sit("pretrain", "-c", config(dir, root), "--skip-corrupt");
    expect(r.code, r.err).toBe(EXIT.ok);
    expect(r.err).toContain(
      `warning: skipped 1 image file(s) that failed to decode (--skip-corrupt): ${bad}`,
    );
  });
});
