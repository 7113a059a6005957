import { ConfigError, describeValue } from "@sit/core";
import { encodePng, writeFileAtomic } from "@sit/core/node";
import { type GmmlGridOptions, type ImageInput, type PixelMask, drawGmmlGrid } from "@sit/gmml";

// Node only (@sit/gmml/node): the GMML grid as a PNG file. The pixels are drawGmmlGrid's, from
// the main entry, which a web page draws on a canvas instead.

/** {@link drawGmmlGrid}'s picture encoded as PNG bytes. */
export function renderGmmlGrid(
  images: ImageInput,
  mask: PixelMask,
  corrupted: ImageInput,
  options: GmmlGridOptions = {},
): Uint8Array {
  const { width, height, data } = drawGmmlGrid(images, mask, corrupted, options);
  return encodePng(data, width, height, 3);
}

/** {@link renderGmmlGrid}, written atomically to `path` (a crash never leaves a partial PNG). */
export function writeGmmlGrid(
  path: string,
  images: ImageInput,
  mask: PixelMask,
  corrupted: ImageInput,
  options: GmmlGridOptions = {},
): void {
  if (typeof path !== "string" || path.length === 0)
    throw new ConfigError(`path: expected a non-empty file path, got ${describeValue(path)}`);
  writeFileAtomic(path, renderGmmlGrid(images, mask, corrupted, options));
}
