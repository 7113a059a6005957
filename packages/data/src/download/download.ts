import { createHash } from "node:crypto";
import {
  createReadStream,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
} from "node:fs";
import { open } from "node:fs/promises";
import { basename, join } from "node:path";
import { ConfigError, IOError } from "@sit/core";
import { writeFileAtomic } from "@sit/core/node";
import { extractArchive } from "./extract";
import { DATASET_SOURCES, type DatasetSource, type RemoteFile } from "@sit/data";

/** Options of {@link downloadDataset}. */
export interface DownloadOptions {
  /** Fetch every file from `baseUrl/<filename>` instead of its own URL (mirrors, tests). */
  baseUrl?: string;
  /** The fetch implementation (default: the global `fetch`). */
  fetch?: typeof fetch;
  /** Attempts per file when a transfer breaks off; each resumes where the last stopped. Default 3. */
  retries?: number;
  /** Progress of each file's transfer. */
  onProgress?: (event: { file: string; received: number; total?: number }) => void;
  /** Abort the download (the `.part` file is kept for a later resume). */
  signal?: AbortSignal;
}

/** What {@link downloadDataset} did for one file. */
export interface DownloadedFile {
  filename: string;
  path: string;
  /** Already complete from an earlier call (done-marker present): nothing was fetched. */
  cached: boolean;
  /** A checksum (md5 and/or sha256) was given and matched. */
  verified: boolean;
  /** Bytes fetched in this call (0 when cached). */
  bytesFetched: number;
  /** The transfer resumed a `.part` file left by an earlier, interrupted attempt. */
  resumed: boolean;
  extracted: boolean;
}

/** Result of {@link downloadDataset}. */
export interface DownloadResult {
  name: string;
  dir: string;
  /** The folder the matching loader reads (`dir/readerDir`). */
  readerDir: string;
  files: DownloadedFile[];
}

const MARKER_DIR = ".sit-download";

function filenameOf(file: RemoteFile): string {
  const name = file.filename ?? basename(new URL(file.url).pathname);
  if (!name || name.includes("/") || name.includes("\\") || name.startsWith("."))
    throw new ConfigError(`filename: expected a plain file name, got ${JSON.stringify(name)}`);
  return name;
}

/** Hex digest of a file, streamed. */
export async function hashFile(path: string, algorithm: "md5" | "sha256"): Promise<string> {
  const hash = createHash(algorithm);
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

async function verify(path: string, file: RemoteFile, name: string): Promise<boolean> {
  let verified = false;
  for (const algorithm of ["md5", "sha256"] as const) {
    const expected = file[algorithm]?.toLowerCase();
    if (!expected) continue;
    const actual = await hashFile(path, algorithm);
    if (actual !== expected) {
      rmSync(path, { force: true });
      throw new IOError(
        `${name}: ${algorithm} mismatch for ${file.url}: expected ${expected}, got ${actual}; the bad file was removed — retry, or check the URL/mirror`,
      );
    }
    verified = true;
  }
  return verified;
}

/** The first byte of a `Content-Range: bytes <first>-<last>/<total>` header, or undefined. */
function rangeStart(header: string | null): number | undefined {
  const m = /^\s*bytes\s+(\d+)-\d+\/(\d+|\*)\s*$/i.exec(header ?? "");
  return m ? Number(m[1]) : undefined;
}

/** Fetch `url` into `part`, resuming with an HTTP Range request when `part` already has bytes. */
async function fetchInto(
  url: string,
  part: string,
  name: string,
  options: DownloadOptions,
): Promise<{ bytes: number; resumed: boolean }> {
  const doFetch = options.fetch ?? globalThis.fetch;
  const retries = options.retries ?? 3;
  let fetched = 0;
  let resumed = false;
  let restarts = 0;
  let lastError: unknown;
  for (let attempt = 0; attempt < Math.max(1, retries); attempt++) {
    const have = existsSync(part) ? statSync(part).size : 0;
    const headers: Record<string, string> = have > 0 ? { Range: `bytes=${have}-` } : {};
    let response: Response;
    try {
      response = await doFetch(url, { headers, signal: options.signal });
    } catch (err) {
      lastError = err;
      if (options.signal?.aborted) break;
      continue;
    }
    if (response.status === 416 && have > 0) return { bytes: fetched, resumed: true }; // already complete
    if (!(response.status === 200 || response.status === 206)) {
      throw new IOError(`${name}: HTTP ${response.status} ${response.statusText} for ${url}`);
    }
    // A 206 continues the file only if its Content-Range starts where the file on disk ends; some
    // servers send the whole file (from byte 0) or another range as a 206. From 0 it is the file:
    // write it from the start; anything else is discarded and fetched again from byte 0.
    let start = response.status === 206 ? rangeStart(response.headers.get("content-range")) : 0;
    if (have === 0) start ??= 0; // nothing was asked for: a 206 without a range is the file
    if (start !== have && start !== 0) {
      await response.body?.cancel();
      rmSync(part, { force: true });
      lastError = new IOError(
        `${name}: asked for bytes ${have}- of ${url}, got Content-Range ${JSON.stringify(response.headers.get("content-range"))}; restarted from byte 0`,
      );
      attempt--; // not a broken transfer: the retry budget is for those
      if (++restarts > 1) throw lastError;
      continue;
    }
    const append = have > 0 && start === have;
    if (append) resumed = true;
    const lengthHeader = response.headers.get("content-length");
    const total = lengthHeader ? Number(lengthHeader) + (append ? have : 0) : undefined;
    const handle = await open(part, append ? "a" : "w");
    let received = append ? have : 0;
    try {
      if (!response.body) throw new IOError(`${name}: empty response body from ${url}`);
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        await handle.write(chunk);
        received += chunk.length;
        fetched += chunk.length;
        options.onProgress?.({ file: name, received, total });
      }
      await handle.sync();
    } catch (err) {
      lastError = err;
      await handle.close();
      if (options.signal?.aborted) break;
      continue; // resume from what reached the disk
    }
    await handle.close();
    if (total !== undefined && received < total) {
      lastError = new IOError(`${name}: transfer ended at ${received} of ${total} bytes`);
      continue;
    }
    return { bytes: fetched, resumed };
  }
  throw new IOError(
    `${name}: download of ${url} failed after ${Math.max(1, retries)} attempt(s) (${(lastError as Error)?.message ?? lastError}); the partial file ${part} is kept and the next call resumes it`,
    { cause: lastError },
  );
}

/**
 * Download a dataset into `dir`: every file is fetched into `<file>.part` (resuming an earlier
 * partial transfer with an HTTP Range request), verified against its md5/sha256 (a mismatch
 * removes the bad file and throws), renamed into place, extracted when it is an archive, and
 * recorded with a done-marker (`dir/.sit-download/<file>.json`, written atomically). Calling it
 * again skips completed files; a failure never deletes files completed earlier.
 *
 * `source` is a name of {@link DATASET_SOURCES} or your own {@link DatasetSource}.
 */
export async function downloadDataset(
  source: string | DatasetSource,
  dir: string,
  options: DownloadOptions = {},
): Promise<DownloadResult> {
  const spec = typeof source === "string" ? DATASET_SOURCES[source] : source;
  if (!spec)
    throw new ConfigError(
      `name: expected one of ${Object.keys(DATASET_SOURCES).join(", ")}, got ${JSON.stringify(source)}`,
    );
  if (typeof dir !== "string" || dir.length === 0)
    throw new ConfigError(`dir: expected a directory path, got ${JSON.stringify(dir)}`);
  mkdirSync(join(dir, MARKER_DIR), { recursive: true });
  const results: DownloadedFile[] = [];
  for (const file of spec.files) {
    const filename = filenameOf(file);
    const path = join(dir, filename);
    const marker = join(dir, MARKER_DIR, `${filename}.json`);
    if (existsSync(marker)) {
      const done = JSON.parse(readFileSync(marker, "utf8")) as {
        verified: boolean;
        extracted: boolean;
      };
      results.push({
        filename,
        path,
        cached: true,
        verified: done.verified,
        bytesFetched: 0,
        resumed: false,
        extracted: done.extracted,
      });
      continue;
    }
    const url = options.baseUrl ? `${options.baseUrl.replace(/\/+$/, "")}/${filename}` : file.url;
    const part = `${path}.part`;
    let bytes = 0;
    let resumed = false;
    if (!existsSync(path)) {
      ({ bytes, resumed } = await fetchInto(url, part, `${spec.name}/${filename}`, options));
      await verify(part, file, `${spec.name}/${filename}`);
      renameSync(part, path);
    } else {
      // Complete file from an interrupted earlier call (renamed but not yet extracted/marked).
      await verify(path, file, `${spec.name}/${filename}`);
    }
    const verified = Boolean(file.md5 || file.sha256);
    if (file.extract) await extractArchive(path, dir, file.extract);
    writeFileAtomic(
      marker,
      JSON.stringify({
        url,
        md5: file.md5,
        sha256: file.sha256,
        size: statSync(path).size,
        verified,
        extracted: Boolean(file.extract),
        at: new Date().toISOString(),
      }),
    );
    results.push({
      filename,
      path,
      cached: false,
      verified,
      bytesFetched: bytes,
      resumed,
      extracted: Boolean(file.extract),
    });
  }
  return { name: spec.name, dir, readerDir: join(dir, spec.readerDir), files: results };
}
