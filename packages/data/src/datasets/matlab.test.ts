import { deflateSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { parseMat } from "./matlab";

/** A little-endian MATLAB v5 file holding one miCOMPRESSED element that deflates `inner`. */
function matWithCompressed(inner: Uint8Array): Uint8Array {
  const header = Buffer.alloc(128, 0x20);
  header.write("MATLAB 5.0 MAT-file, written by a test", 0, "latin1");
  header.writeUInt16LE(0x0100, 124);
  header.write("IM", 126, "latin1");
  const z = deflateSync(inner);
  const tag = Buffer.alloc(8);
  tag.writeUInt32LE(15, 0); // miCOMPRESSED
  tag.writeUInt32LE(z.length, 4);
  return Buffer.concat([header, tag, z]);
}

describe("MAT v5 compressed elements", () => {
  it("inflate to the size their element tag declares, no more", () => {
    // A miMATRIX tag declaring 48 bytes, then 20 MB of zeros: ~20 KB compressed.
    const tag = Buffer.alloc(8);
    tag.writeUInt32LE(14, 0);
    tag.writeUInt32LE(48, 4);
    const bomb = matWithCompressed(Buffer.concat([tag, Buffer.alloc(20e6)]));
    expect(bomb.length).toBeLessThan(40_000);
    expect(() => parseMat(bomb, "bomb.mat")).toThrow(
      "bomb.mat: compressed element inflates to more than the 56 bytes its tag declares; refusing to inflate it",
    );
    expect(() => parseMat(matWithCompressed(Buffer.from([1, 2, 3])), "tiny.mat")).toThrow(
      "tiny.mat: truncated compressed element (no element tag inside)",
    );
  });
});
