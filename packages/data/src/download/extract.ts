import { createReadStream, createWriteStream, mkdirSync } from "node:fs";
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

async function extractZip(archive: string, dest: string): Promise<void> {
  const zip = await new Promise<yauzl.ZipFile>((resolve, reject) =>
    yauzl.open(archive, { lazyEntries: true }, (err, z) => (err ? reject(err) : resolve(z!))),
  );
  await new Promise<void>((resolve, reject) => {
    zip.on("error", reject);
    zip.on("end", resolve);
    zip.on("entry", (entry: yauzl.Entry) => {
      const rel = safeEntry(entry.fileName);
      if (rel === null) {
        zip.close();
        reject(
          new IOError(
            `${archive}: entry ${JSON.stringify(entry.fileName)} points outside the target folder`,
          ),
        );
        return;
      }
      const target = join(dest, rel);
      if (entry.fileName.endsWith("/")) {
        mkdirSync(target, { recursive: true });
        zip.readEntry();
        return;
      }
      zip.openReadStream(entry, (err, stream) => {
        if (err || !stream) {
          reject(err ?? new IOError(`${archive}: cannot read ${entry.fileName}`));
          return;
        }
        mkdirSync(dirname(target), { recursive: true });
        pipeline(stream, createWriteStream(target)).then(() => zip.readEntry(), reject);
      });
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
