import { writeFileAtomic } from "@sit/core/node";
import { type ConfusionMatrix, type ConfusionPngOptions, confusionMatrixSvg } from "@sit/eval";

// Node only (@sit/eval/node): the confusion matrix as a PNG file. The picture is the main entry's
// confusionMatrixSvg, which a page can show as it is.

/**
 * Render {@link confusionMatrixSvg} as PNG bytes. sharp rasterises the SVG (librsvg,
 * with the system's fonts).
 */
export async function renderConfusionMatrixPng(
  cm: ConfusionMatrix,
  options: ConfusionPngOptions = {},
): Promise<Uint8Array> {
  const svg = confusionMatrixSvg(cm, options);
  const { default: sharp } = await import("sharp");
  return new Uint8Array(await sharp(Buffer.from(svg), { density: 72 }).png().toBuffer());
}

/** Render with {@link renderConfusionMatrixPng} and write the file atomically. */
export async function writeConfusionMatrixPng(
  path: string,
  cm: ConfusionMatrix,
  options: ConfusionPngOptions = {},
): Promise<void> {
  writeFileAtomic(path, await renderConfusionMatrixPng(cm, options));
}
