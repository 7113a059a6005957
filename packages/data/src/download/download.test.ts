import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { type Server, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import * as tar from "tar";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import yazl from "yazl";
import { loadCifar10 } from "../datasets/binary";
import { loadFashionMnist } from "../datasets/idx-files";
import { downloadDataset } from "./download";
import type { DatasetSource } from "./sources";

const tmp = mkdtempSync(join(tmpdir(), "sit-data-dl-"));
const md5 = (b: Uint8Array) => createHash("md5").update(b).digest("hex");
const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

// A local HTTP server (127.0.0.1 only) that serves test-made archives, honours Range requests,
// and can cut a response short to simulate a broken connection.
const files = new Map<string, Buffer>();
const cutAfter = new Map<string, number>(); // name → bytes sent before the socket is destroyed (once)
let ignoreRange = false;
/** How a misbehaving server answers a Range request with a 206: the whole file, another range, no range. */
let badRange: "from-zero" | "other-start" | "no-header" | undefined;
const requests: { path: string; range?: string }[] = [];
let server: Server;
let baseUrl: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    const name = decodeURIComponent((req.url ?? "/").slice(1));
    requests.push({ path: name, range: req.headers.range });
    const body = files.get(name);
    if (!body) {
      res.writeHead(404, "Not Found").end();
      return;
    }
    let start = 0;
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
    if (m && badRange) {
      const from = badRange === "other-start" ? 1000 : 0;
      res.writeHead(206, {
        "Content-Length": body.length - from,
        ...(badRange === "no-header"
          ? {}
          : { "Content-Range": `bytes ${from}-${body.length - 1}/${body.length}` }),
      });
      res.end(body.subarray(from));
      return;
    }
    if (m && !ignoreRange) {
      start = Number(m[1]);
      if (start >= body.length) {
        res.writeHead(416, { "Content-Range": `bytes */${body.length}` }).end();
        return;
      }
      res.writeHead(206, {
        "Content-Length": body.length - start,
        "Content-Range": `bytes ${start}-${body.length - 1}/${body.length}`,
      });
    } else res.writeHead(200, { "Content-Length": body.length });
    const cut = cutAfter.get(name);
    if (cut !== undefined) {
      cutAfter.delete(name);
      // The partial body, time for the client to store it, then a dropped connection (a stream
      // error discards chunks the client has not read yet, so the pause keeps the test exact).
      res.write(body.subarray(start, start + cut), () => setTimeout(() => res.destroy(), 150));
      return;
    }
    res.end(body.subarray(start));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  rmSync(tmp, { recursive: true, force: true });
});
beforeEach(() => {
  requests.length = 0;
  ignoreRange = false;
  badRange = undefined;
});

/** Incompressible bytes from a hash chain (deterministic). */
function noise(n: number): Buffer {
  const parts: Buffer[] = [];
  let h = Buffer.from("seed");
  for (let size = 0; size < n; size += 64) {
    h = createHash("sha512").update(h).digest();
    parts.push(h);
  }
  return Buffer.concat(parts).subarray(0, n);
}

/** A CIFAR-10 binary tree (one record per batch file) as the real archive lays it out. */
async function cifarArchive(): Promise<Buffer> {
  const src = join(tmp, "src-cifar");
  const dir = join(src, "cifar-10-batches-bin");
  mkdirSync(dir, { recursive: true });
  const rec = (label: number) => {
    const r = Buffer.alloc(3073);
    r[0] = label;
    for (let i = 1; i < r.length; i++) r[i] = (i * 13 + label) % 256;
    return r;
  };
  for (let b = 1; b <= 5; b++)
    writeFileSync(join(dir, `data_batch_${b}.bin`), Buffer.concat([rec(b), rec(b + 1)]));
  writeFileSync(join(dir, "test_batch.bin"), rec(9));
  writeFileSync(join(dir, "batches.meta.txt"), "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n");
  // 64 KiB of incompressible padding so that cutting a transfer short leaves a real partial file.
  writeFileSync(join(dir, "readme.html"), noise(65536));
  const out = join(tmp, "cifar-10-binary.tar.gz");
  await tar.c({ gzip: true, file: out, cwd: src }, ["cifar-10-batches-bin"]);
  return readFileSync(out);
}

function source(
  name: string,
  entries: [
    string,
    Buffer,
    Partial<{ md5: string; sha256: string; extract: "tar" | "zip" | "gunzip" }>,
  ][],
): DatasetSource {
  return {
    name,
    readerDir: name === "cifar" ? "cifar-10-batches-bin" : ".",
    checksumNote: "test",
    files: entries.map(([filename, , opts]) => ({
      url: `https://example.invalid/${filename}`,
      filename,
      ...opts,
    })),
  };
}

describe("downloadDataset against a local server", () => {
  it("resumes a broken transfer with a Range request, verifies, extracts, and is idempotent", async () => {
    const archive = await cifarArchive();
    files.set("cifar-10-binary.tar.gz", archive);
    cutAfter.set("cifar-10-binary.tar.gz", 20000);
    const dir = join(tmp, "cifar-dl");
    const spec = source("cifar", [
      [
        "cifar-10-binary.tar.gz",
        archive,
        { md5: md5(archive), sha256: sha256(archive), extract: "tar" },
      ],
    ]);
    const result = await downloadDataset(spec, dir, { baseUrl });
    expect(requests.map((r) => r.range)).toEqual([undefined, "bytes=20000-"]);
    expect(result.files[0]).toMatchObject({
      cached: false,
      verified: true,
      resumed: true,
      extracted: true,
      bytesFetched: archive.length,
    });
    expect(readFileSync(join(dir, "cifar-10-binary.tar.gz")).equals(archive)).toBe(true);
    expect(existsSync(join(dir, "cifar-10-binary.tar.gz.part"))).toBe(false);
    const ds = loadCifar10(result.readerDir, "train");
    expect(Array.from(ds.labels)).toEqual([1, 2, 2, 3, 3, 4, 4, 5, 5, 6]);

    requests.length = 0;
    const again = await downloadDataset(spec, dir, { baseUrl });
    expect(requests).toEqual([]);
    expect(again.files[0]).toMatchObject({ cached: true, bytesFetched: 0 });
  });

  it("resumes a .part file left by an earlier call, and restarts when the server ignores Range", async () => {
    const body = noise(40000);
    files.set("blob.bin", body);
    const spec = source("blob", [["blob.bin", body, { sha256: sha256(body) }]]);
    const dir = join(tmp, "resume-dl");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "blob.bin.part"), body.subarray(0, 5000));
    const r = await downloadDataset(spec, dir, { baseUrl });
    expect(requests.map((q) => q.range)).toEqual(["bytes=5000-"]);
    expect(r.files[0]).toMatchObject({ resumed: true, bytesFetched: body.length - 5000 });
    expect(readFileSync(join(dir, "blob.bin")).equals(body)).toBe(true);

    const dir2 = join(tmp, "norange-dl");
    mkdirSync(dir2, { recursive: true });
    writeFileSync(join(dir2, "blob.bin.part"), body.subarray(0, 5000));
    ignoreRange = true;
    const r2 = await downloadDataset(spec, dir2, { baseUrl });
    expect(r2.files[0]).toMatchObject({ resumed: false, bytesFetched: body.length });
    expect(readFileSync(join(dir2, "blob.bin")).equals(body)).toBe(true);
  });

  it("a 206 whose Content-Range does not start where the .part file ends restarts from byte 0", async () => {
    const body = noise(40000);
    files.set("nosum.bin", body);
    // No checksum (as fgvc-aircraft): only the range check stands between the user and a bad file.
    const spec = source("nosum", [["nosum.bin", body, {}]]);
    for (const mode of ["from-zero", "other-start", "no-header"] as const) {
      const dir = join(tmp, `badrange-${mode}`);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, "nosum.bin.part"), body.subarray(0, 5000));
      badRange = mode;
      requests.length = 0;
      const r = await downloadDataset(spec, dir, { baseUrl, retries: 1 });
      expect(readFileSync(join(dir, "nosum.bin")).length).toBe(body.length);
      expect(readFileSync(join(dir, "nosum.bin")).equals(body)).toBe(true);
      expect(r.files[0].resumed).toBe(false);
      // The whole file in a 206 is used as it is; other ranges are dropped and fetched again.
      expect(requests.map((q) => q.range)).toEqual(
        mode === "from-zero" ? ["bytes=5000-"] : ["bytes=5000-", undefined],
      );
    }
  });

  it("a checksum mismatch fails loudly, removes only the bad file, keeps earlier files", async () => {
    const good = Buffer.from("good file contents");
    const bad = Buffer.from("tampered contents");
    files.set("good.txt", good);
    files.set("bad.txt", bad);
    const dir = join(tmp, "mismatch-dl");
    const spec = source("pair", [
      ["good.txt", good, { md5: md5(good) }],
      ["bad.txt", bad, { md5: md5(Buffer.from("what was published")) }],
    ]);
    await expect(downloadDataset(spec, dir, { baseUrl })).rejects.toThrow(
      /pair\/bad\.txt: md5 mismatch for .*bad\.txt: expected [0-9a-f]{32}, got [0-9a-f]{32}; the bad file was removed/,
    );
    expect(existsSync(join(dir, "bad.txt"))).toBe(false);
    expect(existsSync(join(dir, "bad.txt.part"))).toBe(false);
    expect(readFileSync(join(dir, "good.txt")).equals(good)).toBe(true);
    // The good file is not fetched again.
    requests.length = 0;
    await expect(downloadDataset(spec, dir, { baseUrl })).rejects.toThrow(/md5 mismatch/);
    expect(requests.map((r) => r.path)).toEqual(["bad.txt"]);
  });

  it("the built-in registry verifies the published checksums (fake files fail)", async () => {
    for (const f of [
      "train-images-idx3-ubyte.gz",
      "train-labels-idx1-ubyte.gz",
      "t10k-images-idx3-ubyte.gz",
      "t10k-labels-idx1-ubyte.gz",
    ])
      files.set(f, gzipSync(Buffer.from(`not the real ${f}`)));
    await expect(downloadDataset("fashion-mnist", join(tmp, "fm-dl"), { baseUrl })).rejects.toThrow(
      /fashion-mnist\/train-images-idx3-ubyte\.gz: md5 mismatch .* expected 8d4fb7e6c68d591d4c3dfef9ec88bf0d/,
    );
    await expect(downloadDataset("imagenet-22k", tmp)).rejects.toThrow(
      /name: expected one of mnist, fashion-mnist/,
    );
  });

  it("zip and gzip archives are extracted; HTTP errors name the URL", async () => {
    const zip = new yazl.ZipFile();
    const idxImages = Buffer.concat([
      Buffer.from([0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2]),
      Buffer.from([1, 2, 3, 4]),
    ]);
    const idxLabels = Buffer.from([0, 0, 8, 1, 0, 0, 0, 1, 7]);
    zip.addBuffer(gzipSync(idxImages), "fm/train-images-idx3-ubyte.gz");
    zip.addBuffer(idxLabels, "fm/train-labels-idx1-ubyte");
    zip.end();
    const chunks: Buffer[] = [];
    for await (const c of zip.outputStream) chunks.push(c as Buffer);
    const zipped = Buffer.concat(chunks);
    files.set("fm.zip", zipped);
    files.set("note.txt.gz", gzipSync(Buffer.from("hello")));
    const dir = join(tmp, "zip-dl");
    const spec = source("zipped", [
      ["fm.zip", zipped, { sha256: sha256(zipped), extract: "zip" }],
      ["note.txt.gz", Buffer.alloc(0), { extract: "gunzip" }],
    ]);
    const r = await downloadDataset(spec, dir, { baseUrl });
    expect(r.files.map((f) => f.verified)).toEqual([true, false]);
    const ds = loadFashionMnist(join(dir, "fm"), "train");
    expect([ds.length, ds.labels![0], ds.get(0).image[3]]).toEqual([1, 7, 4]);
    expect(readFileSync(join(dir, "note.txt"), "utf8")).toBe("hello");
    await expect(
      downloadDataset(source("missing", [["nope.bin", Buffer.alloc(0), {}]]), dir, { baseUrl }),
    ).rejects.toThrow(
      /missing\/nope\.bin: HTTP 404 Not Found for http:\/\/127\.0\.0\.1:\d+\/nope\.bin/,
    );
  });
});
