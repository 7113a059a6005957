// Node only (@sit/train/node): append-only files for the file sinks.
import { closeSync, fsyncSync, mkdirSync, openSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import { IOError } from "@sit/core";

/**
 * An append-only file written with unbuffered `writeSync` calls, so that every record reaches the
 * operating system as soon as it is written (a crash loses nothing already reported); `close`
 * fsyncs.
 */
export class AppendFile {
  private fd: number | undefined;

  constructor(
    readonly path: string,
    private readonly owner: string,
  ) {
    try {
      mkdirSync(dirname(path), { recursive: true });
      this.fd = openSync(path, "a");
    } catch (err) {
      throw new IOError(`${owner}: cannot open ${path} for appending: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  write(data: Uint8Array | string): void {
    if (this.fd === undefined) throw new IOError(`${this.owner}: ${this.path} is already closed`);
    const bytes = typeof data === "string" ? Buffer.from(data, "utf8") : data;
    try {
      let off = 0;
      while (off < bytes.length) off += writeSync(this.fd, bytes, off, bytes.length - off);
    } catch (err) {
      throw new IOError(`${this.owner}: cannot write to ${this.path}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  close(): void {
    if (this.fd === undefined) return;
    const fd = this.fd;
    this.fd = undefined;
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
}
