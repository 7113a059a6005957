import { type Stats, createReadStream, createWriteStream, lstatSync, mkdirSync } from "node:fs";
import { dirname, isAbsolute, join, normalize, sep } from "node:path";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import { ConfigError, IOError } from "@sit/core";
import * as tar from "tar";
import yauzl from "yauzl";

/** A safe relative path inside the target folder, or null for entries escaping it. */
function safeEntry(name: string): string | null {
  const p = normalize(name);
  if (isAbsolute(p) || p === ".." || p.startsWith(`..${sep}`)) return null;
  return p;
}

/**
 * Refuse a path inside `dest` that would write through a symlink (a stale or planted link could
 * point anywhere) or that needs a folder where the archive, or the disk, has a file.
 */
function checkTarget(archive: string, dest: string, rel: string, entry: string): void {
  const isDir = entry.endsWith("/");
  const parts = rel.split(sep).filter((p) => p !== "" && p !== ".");
  let at = dest;
  parts.forEach((part, i) => {
    at = join(at, part);
    let st: Stats;
    try {
      st = lstatSync(at);
    } catch {
      return; // does not exist yet: created below
    }
    const last = i === parts.length - 1;
    if (st.isSymbolicLink())
      throw new IOError(
        `${archive}: entry ${JSON.stringify(entry)} would be written through the symlink ${at}; remove it and extract again`,
      );
    if ((isDir || !last) && !st.isDirectory())
      throw new IOError(
        `${archive}: entry ${JSON.stringify(entry)} needs ${at} to be a folder, but it is a file`,
      );
  });
}

async function extractZip(archive: string, dest: string): Promise<void> {
  const zip = await new Promise<yauzl.ZipFile>((resolve, reject) =>
    yauzl.open(archive, { lazyEntries: true }, (err, z) => (err ? reject(err) : resolve(z!))),
  );
  await new Promise<void>((resolve, reject) => {
    // Everything below runs in yauzl's callbacks, where a throw would crash the process instead
    // of failing the extraction: each step catches and ends here.
    const fail = (err: unknown) => {
      zip.close();
      reject(err);
    };
    zip.on("error", fail);
    zip.on("end", resolve);
    zip.on("entry", (entry: yauzl.Entry) => {
      try {
        const rel = safeEntry(entry.fileName);
        if (rel === null)
          throw new IOError(
            `${archive}: entry ${JSON.stringify(entry.fileName)} points outside the target folder`,
          );
        checkTarget(archive, dest, rel, entry.fileName);
        const target = join(dest, rel);
        if (entry.fileName.endsWith("/")) {
          mkdirSync(target, { recursive: true });
          zip.readEntry();
          return;
        }
        mkdirSync(dirname(target), { recursive: true });
        zip.openReadStream(entry, (err, stream) => {
          if (err || !stream) {
            fail(err ?? new IOError(`${archive}: cannot read ${entry.fileName}`));
            return;
          }
          pipeline(stream, createWriteStream(target)).then(() => zip.readEntry(), fail);
        });
      } catch (err) {
        fail(err);
      }
    });
    zip.readEntry();
  });
}

/**
 * Unpack `archive` into `dest`: "tar" (plain or gzipped, via node-tar, entries escaping `dest`
 * refused), "zip" (via yauzl, same rule) or "gunzip" (a single `.gz` file → the name without
 * `.gz`). Errors name the archive.
 */
export async function extractArchive(
  archive: string,
  dest: string,
  kind: "tar" | "zip" | "gunzip",
): Promise<void> {
  try {
    if (kind === "tar") {
      mkdirSync(dest, { recursive: true });
      await tar.x({ file: archive, cwd: dest, strict: true, preservePaths: false });
    } else if (kind === "zip") {
      await extractZip(archive, dest);
    } else if (kind === "gunzip") {
      if (!archive.endsWith(".gz"))
        throw new ConfigError(`archive: expected a .gz file for gunzip, got ${archive}`);
      await pipeline(
        createReadStream(archive),
        createGunzip(),
        createWriteStream(archive.slice(0, -3)),
      );
    } else {
      throw new ConfigError(`kind: expected "tar", "zip" or "gunzip", got ${JSON.stringify(kind)}`);
    }
  } catch (err) {
    if (err instanceof ConfigError || err instanceof IOError) throw err;
    throw new IOError(`${archive}: extraction failed (${(err as Error).message})`, { cause: err });
  }
}
