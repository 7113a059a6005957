import { existsSync, readdirSync, statSync } from "node:fs";
import { extname, join } from "node:path";
import { ConfigError, IOError, ShapeError } from "@sit/core";
import type { Dataset, Sample } from "../types";
import { type DecodeOptions, type DecodePool, checkDecodeOptions, decodeImageFile } from "./decode";
import { maxLabel } from "./idx-header";

/** Options shared by every dataset of image files. */
export interface ImageFilesOptions extends DecodeOptions {
  /**
   * When true, a file that fails to decode is replaced by the next decodable file (in index
   * order, wrapping around) and counted in `corruptCount` / `corruptFiles`; when false (default),
   * `get` rejects with an IOError naming the file.
   */
  skipCorrupt?: boolean;
  /** Decode in these worker threads instead of sharp's own thread pool. */
  pool?: DecodePool;
}

/**
 * A dataset of image files with optional labels, decoded on access with sharp (asynchronous
 * `get`). The base of image folders and of the split lists of Flowers-102, Pets, CUB-200-2011,
 * FGVC-Aircraft and Stanford Cars.
 */
export class FileListDataset implements Dataset {
  readonly length: number;
  readonly numClasses?: number;
  /** Files that failed to decode and were skipped (with `skipCorrupt`). */
  readonly corruptFiles = new Set<string>();
  private readonly options: ImageFilesOptions & { channels: 1 | 3 };

  constructor(
    readonly files: readonly string[],
    readonly labels?: Int32Array,
    readonly classNames?: readonly string[],
    options: ImageFilesOptions = {},
  ) {
    if (files.length === 0)
      throw new ConfigError("files: expected at least one image file, got []");
    if (labels && labels.length !== files.length)
      throw new ShapeError(
        `labels: expected ${files.length} labels (one per file), got ${labels.length}`,
      );
    this.length = files.length;
    this.options = { ...options, ...checkDecodeOptions(options) };
    if (classNames) this.numClasses = classNames.length;
    else if (labels) this.numClasses = maxLabel(labels) + 1;
  }

  /** How many distinct files were skipped as corrupt so far. */
  get corruptCount(): number {
    return this.corruptFiles.size;
  }

  private decode(path: string): Promise<Sample> {
    const { pool, channels, resizeShorter } = this.options;
    return pool
      ? pool.decode(path, { channels, resizeShorter })
      : decodeImageFile(path, { channels, resizeShorter });
  }

  async get(index: number): Promise<Sample> {
    if (!Number.isInteger(index) || index < 0 || index >= this.length)
      throw new ConfigError(`index: expected an integer in [0, ${this.length}), got ${index}`);
    for (let k = 0; k < this.length; k++) {
      const i = (index + k) % this.length;
      const path = this.files[i];
      if (this.options.skipCorrupt && this.corruptFiles.has(path)) continue;
      try {
        const sample = await this.decode(path);
        if (this.labels) sample.label = this.labels[i];
        return sample;
      } catch (err) {
        if (!this.options.skipCorrupt) throw err;
        this.corruptFiles.add(path);
      }
    }
    throw new IOError(
      `every one of the ${this.length} image files failed to decode (first: ${this.files[0]})`,
    );
  }
}

/** File extensions read by {@link ImageFolderDataset} by default. */
export const IMAGE_EXTENSIONS: readonly string[] = [
  ".jpg",
  ".jpeg",
  ".png",
  ".webp",
  ".bmp",
  ".tif",
  ".tiff",
  ".gif",
];

/**
 * torchvision's `ImageFolder` layout: `root/<class>/<image>`; classes are the sub-folder names
 * sorted, files sorted within each class. Missing root, no class folders, or a class folder
 * without images raise an IOError naming the folder.
 */
export class ImageFolderDataset extends FileListDataset {
  constructor(
    readonly root: string,
    options: ImageFilesOptions & { extensions?: readonly string[] } = {},
  ) {
    const { files, labels, classNames } = scanImageFolder(
      root,
      options.extensions ?? IMAGE_EXTENSIONS,
    );
    super(files, labels, classNames, options);
  }
}

/** Scan `root/<class>/<image>` into files, labels and sorted class names. */
export function scanImageFolder(
  root: string,
  extensions: readonly string[] = IMAGE_EXTENSIONS,
): { files: string[]; labels: Int32Array; classNames: string[] } {
  if (!existsSync(root) || !statSync(root).isDirectory())
    throw new IOError(`${root}: image folder not found`);
  const exts = new Set(extensions.map((e) => e.toLowerCase()));
  const classNames = readdirSync(root, { withFileTypes: true })
    .filter((d) => d.isDirectory() && !d.name.startsWith("."))
    .map((d) => d.name)
    .sort();
  if (classNames.length === 0)
    throw new IOError(`${root}: no class folders (expected root/<class>/<image> files)`);
  const files: string[] = [];
  const labels: number[] = [];
  classNames.forEach((name, label) => {
    const dir = join(root, name);
    const images = readdirSync(dir)
      .filter((f) => exts.has(extname(f).toLowerCase()))
      .sort();
    if (images.length === 0)
      throw new IOError(
        `${dir}: class folder "${name}" has no images (extensions ${[...exts].join(", ")})`,
      );
    for (const f of images) {
      files.push(join(dir, f));
      labels.push(label);
    }
  });
  return { files, labels: Int32Array.from(labels), classNames };
}
