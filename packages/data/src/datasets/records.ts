import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { ConfigError, IOError } from "@sit/core";
import { inflatedHead } from "./inflate";

/** How far a gzip stream may inflate: the size that the format's own header declares. */
export interface InflateLimit {
  /** Inflated bytes that hold the header (fewer when the stream is shorter). */
  headBytes: number;
  /** The size the header declares; the stream may inflate to no more. */
  maxBytes(head: Uint8Array): number;
}

/**
 * Read a whole file, gunzipping it when it starts with the gzip magic bytes. The stream may
 * inflate to no more than what its header declares (`limit`): a 200 KB file can otherwise
 * inflate to 200 MB in memory.
 */
export function readMaybeGzip(path: string, limit: InflateLimit): Uint8Array {
  if (!existsSync(path)) throw new IOError(`${path}: file not found`);
  const raw = readFileSync(path);
  if (raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b) {
    let max: number;
    try {
      max = limit.maxBytes(inflatedHead(raw, limit.headBytes, "gzip"));
      return gunzipSync(raw, { maxOutputLength: Math.max(1, max) });
    } catch (err) {
      if (err instanceof IOError) throw err;
      if ((err as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE")
        throw new IOError(
          `${path}: gzip stream inflates to more than the ${max!} bytes its header declares; refusing to inflate it`,
          { cause: err },
        );
      throw new IOError(`${path}: corrupt gzip stream (${(err as Error).message})`, { cause: err });
    }
  }
  return raw;
}

/** The first path of `candidates` that exists, or an IOError listing them all. */
export function firstExisting(what: string, candidates: readonly string[]): string {
  for (const c of candidates) if (existsSync(c)) return c;
  throw new IOError(`${what}: none of these files exists: ${candidates.join(", ")}`);
}

/**
 * Fixed-size records stored back to back in one or more files (CIFAR batches, STL-10 `*_X.bin`).
 * Every file's size must be a whole number of records — a truncated download is reported with
 * the file's name and size. Records are served from memory (`inMemory`) or read on demand with
 * positioned reads, which keeps the 2.6 GB STL-10 unlabeled split off the heap.
 */
export class RecordFiles {
  readonly length: number;
  private readonly starts: number[] = [];
  private readonly buffers: (Uint8Array | null)[] = [];
  private readonly fds: (number | null)[] = [];

  constructor(
    readonly paths: readonly string[],
    readonly recordSize: number,
    options: { inMemory?: boolean; maxRecords?: number } = {},
  ) {
    if (paths.length === 0) throw new ConfigError("paths: expected at least one file, got []");
    let total = 0;
    for (const path of paths) {
      if (!existsSync(path)) throw new IOError(`${path}: file not found`);
      const size = statSync(path).size;
      if (size === 0 || size % recordSize !== 0) {
        throw new IOError(
          `${path}: truncated or not in this format: ${size} bytes is not a whole number of ${recordSize}-byte records (${Math.floor(size / recordSize)} complete, ${size % recordSize} bytes left over)`,
        );
      }
      this.starts.push(total);
      total += size / recordSize;
      const inMemory = options.inMemory ?? size <= 512 * 1024 * 1024;
      this.buffers.push(inMemory ? readFileSync(path) : null);
      this.fds.push(inMemory ? null : openSync(path, "r"));
    }
    this.length = Math.min(total, options.maxRecords ?? total);
  }

  /** Record `i` (a view into memory, or a fresh buffer read from disk). */
  read(i: number): Uint8Array {
    if (!Number.isInteger(i) || i < 0 || i >= this.length)
      throw new ConfigError(`index: expected an integer in [0, ${this.length}), got ${i}`);
    let f = this.starts.length - 1;
    while (this.starts[f] > i) f--;
    const offset = (i - this.starts[f]) * this.recordSize;
    const buffer = this.buffers[f];
    if (buffer) return buffer.subarray(offset, offset + this.recordSize);
    const fd = this.fds[f];
    if (fd === null) throw new IOError(`${this.paths[f]}: already closed`);
    const out = new Uint8Array(this.recordSize);
    const n = readSync(fd, out, 0, this.recordSize, offset);
    if (n !== this.recordSize)
      throw new IOError(
        `${this.paths[f]}: short read at byte ${offset} (${n} of ${this.recordSize})`,
      );
    return out;
  }

  /** Close files held open for on-demand reads. */
  close(): void {
    this.fds.forEach((fd, i) => {
      if (fd !== null) closeSync(fd);
      this.fds[i] = null;
    });
  }
}

/** Non-empty trimmed lines of a text file; an IOError naming the file when it is missing. */
export function readLines(path: string, what = "list file"): string[] {
  if (!existsSync(path)) throw new IOError(`${path}: ${what} not found`);
  return readFileSync(path, "utf8")
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
}
