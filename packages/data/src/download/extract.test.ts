import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { IOError } from "@sit/core";
import { describe, expect, it } from "vitest";
import yazl from "yazl";
import { extractArchive } from "./extract";

const tmp = () => mkdtempSync(join(tmpdir(), "sit-extract-"));

/** A zip of `entries` (a name ending in "/" is a folder) written into a fresh folder. */
async function zipOf(entries: Array<[string, string]>): Promise<string> {
  const zip = new yazl.ZipFile();
  for (const [name, text] of entries)
    if (name.endsWith("/")) zip.addEmptyDirectory(name);
    else zip.addBuffer(Buffer.from(text), name);
  zip.end();
  const chunks: Buffer[] = [];
  for await (const c of zip.outputStream) chunks.push(c as Buffer);
  const path = join(tmp(), "archive.zip");
  writeFileSync(path, Buffer.concat(chunks));
  return path;
}

// Each failure used to be thrown inside yauzl's callback: an uncaught exception that ended the
// process (vitest reports it as an unhandled error) instead of rejecting extractArchive.
describe("extractArchive zip: faults reject the promise", () => {
  it("extracts a well-formed archive", async () => {
    const dest = tmp();
    await extractArchive(
      await zipOf([
        ["d/", ""],
        ["d/x.txt", "x"],
      ]),
      dest,
      "zip",
    );
    expect(readFileSync(join(dest, "d", "x.txt"), "utf8")).toBe("x");
  });

  it("a file `a` followed by an entry `a/x.txt`", async () => {
    const archive = await zipOf([
      ["a", "file"],
      ["a/x.txt", "x"],
    ]);
    const dest = tmp();
    const err = await extractArchive(archive, dest, "zip").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IOError);
    expect((err as Error).message).toBe(
      `${archive}: entry "a/x.txt" needs ${join(dest, "a")} to be a folder, but it is a file`,
    );
    // A folder entry over a file fails the same way.
    const again = tmp();
    await expect(
      extractArchive(
        await zipOf([
          ["a", "file"],
          ["a/", ""],
        ]),
        again,
        "zip",
      ),
    ).rejects.toThrow(/entry "a\/" needs .* to be a folder, but it is a file/);
  });

  it("a stale dangling symlink in the target folder", async () => {
    const dest = tmp();
    symlinkSync(join(dest, "gone"), join(dest, "data"));
    const archive = await zipOf([["data/x.txt", "x"]]);
    await expect(extractArchive(archive, dest, "zip")).rejects.toThrow(
      `${archive}: entry "data/x.txt" would be written through the symlink ${join(dest, "data")}`,
    );
  });

  it("never writes through a symlink, dangling or not, to a place outside the folder", async () => {
    const outside = tmp();
    const dest = tmp();
    symlinkSync(join(outside, "planted.txt"), join(dest, "readme.txt"));
    mkdirSync(join(outside, "dir"));
    symlinkSync(join(outside, "dir"), join(dest, "sub"));
    for (const name of ["readme.txt", "sub/y.txt"])
      await expect(extractArchive(await zipOf([[name, "y"]]), dest, "zip")).rejects.toThrow(
        /would be written through the symlink/,
      );
    expect(existsSync(join(outside, "planted.txt"))).toBe(false);
    expect(existsSync(join(outside, "dir", "y.txt"))).toBe(false);
  });
});
