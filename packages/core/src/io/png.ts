import { crc32, deflateSync } from "node:zlib";
import { invalidArgument } from "@sit/core";

// The one PNG writer of the project (pictures, grids, TensorBoard images): 8-bit RGB or RGBA,
// no interlacing, every row filtered with "None". node:zlib does the compression and the CRCs,
// so it is Node only (@sit/core/node); a web page draws pixels on a canvas instead.

const SIGNATURE = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)) >>> 0);
  return out;
}

/**
 * Encode row-major 8-bit pixels, `channels` (3: RGB, 4: RGBA) per pixel, as PNG file bytes.
 */
export function encodePng(
  pixels: Uint8Array,
  width: number,
  height: number,
  channels: 3 | 4 = 4,
): Uint8Array {
  if (!Number.isInteger(width) || width < 1)
    throw invalidArgument("width", width, "an integer ≥ 1");
  if (!Number.isInteger(height) || height < 1)
    throw invalidArgument("height", height, "an integer ≥ 1");
  if (channels !== 3 && channels !== 4) throw invalidArgument("channels", channels, "3 or 4");
  const rowBytes = width * channels;
  if (!(pixels instanceof Uint8Array) || pixels.length !== rowBytes * height)
    throw invalidArgument(
      "pixels",
      pixels,
      `a Uint8Array of ${rowBytes * height} bytes (${width}×${height}×${channels})`,
    );
  const header = new Uint8Array(13);
  const view = new DataView(header.buffer);
  view.setUint32(0, width);
  view.setUint32(4, height);
  header[8] = 8; // bit depth
  header[9] = channels === 4 ? 6 : 2; // colour type: RGBA or RGB
  // Compression, filter and interlace methods 0 (bytes 10–12).
  const raw = new Uint8Array((rowBytes + 1) * height);
  for (let y = 0; y < height; y++)
    raw.set(pixels.subarray(y * rowBytes, (y + 1) * rowBytes), y * (rowBytes + 1) + 1);
  const parts = [
    SIGNATURE,
    chunk("IHDR", header),
    chunk("IDAT", deflateSync(raw)),
    chunk("IEND", new Uint8Array(0)),
  ];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}
