import { existsSync, mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { DATASETS, DATASET_NAMES, DATASET_SOURCES, type DatasetSource } from "@sit/data";
import { type DownloadOptions, downloadDataset } from "@sit/data/node";
import { type CliIO, UsageError, note } from "./io";

/**
 * The CLI's dataset names that @sit/data can download, and the name of each in
 * `DATASET_SOURCES` (from @sit/data's catalog). Stanford Cars has none (its host no longer
 * serves the files); the bundled subset needs none; an image folder is the user's.
 */
export const DOWNLOADABLE: Readonly<Record<string, string>> = Object.fromEntries(
  DATASET_NAMES.flatMap((name) => {
    const source: string | undefined = DATASETS[name].source;
    return source ? [[name, source]] : [];
  }),
);

/** Where a dataset's files end up inside the folder it was downloaded to (e.g. `cifar-10-batches-bin`). */
export function downloadedReaderDir(dataset: string, dir: string): string | undefined {
  const source = DATASET_SOURCES[DOWNLOADABLE[dataset] ?? ""];
  if (!source) return undefined;
  const reader = join(dir, source.readerDir);
  // `.sit-download` holds downloadDataset's done-markers: this folder is a download's root.
  return existsSync(join(dir, ".sit-download")) && existsSync(reader) ? reader : undefined;
}

/** The command line that downloads a named dataset (for hints). */
export function downloadHint(dataset: string, dataDir: string | undefined): string {
  if (!DOWNLOADABLE[dataset]) return "";
  return `; download it with: sit pretrain --dataset ${dataset} --data-dir ${dataDir ?? `data/${dataset}`} --download`;
}

/** Options of {@link downloadNamedDataset}. */
export interface DownloadNamedOptions
  extends Pick<DownloadOptions, "baseUrl" | "fetch" | "signal"> {
  /** The table of sources (default @sit/data's `DATASET_SOURCES`; tests pass their own). */
  sources?: Readonly<Record<string, DatasetSource>>;
}

/**
 * `--download`: fetch a named dataset into `--data-dir` with @sit/data's `downloadDataset`
 * (checksums verified where the source publishes them, interrupted transfers resumed, archives
 * extracted; files completed earlier are not fetched again). `SIT_DATA_MIRROR=<url>` fetches every
 * file from `<url>/<file name>` instead (a local mirror). Returns the folder its reader reads.
 */
export async function downloadNamedDataset(
  dataset: string,
  dataDir: string | undefined,
  io: CliIO,
  options: DownloadNamedOptions = {},
): Promise<string> {
  const { sources = DATASET_SOURCES, ...rest } = options;
  const name = DOWNLOADABLE[dataset];
  if (!name)
    throw new UsageError(
      `--download: expected a dataset with a download source (${Object.keys(DOWNLOADABLE).join(", ")}), got ${JSON.stringify(dataset)}`,
    );
  if (!dataDir)
    throw new UsageError(
      `--data-dir: --download needs the folder to download ${dataset} into (e.g. --data-dir data/${dataset}), got none`,
    );
  const dir = resolve(dataDir);
  mkdirSync(dir, { recursive: true });
  const source = sources[name];
  if (!source) throw new UsageError(`--download: no source named ${JSON.stringify(name)}`);
  const mirror = process.env.SIT_DATA_MIRROR;
  note(
    io,
    `[sit] download ${dataset} into ${dir}${mirror ? ` from ${mirror}` : ""} (${source.checksumNote})`,
  );
  let lastFile = "";
  const result = await downloadDataset(source, dir, {
    ...(mirror ? { baseUrl: mirror } : {}),
    ...rest,
    onProgress: ({ file }) => {
      if (file !== lastFile) note(io, `[sit] fetching ${file}`);
      lastFile = file;
    },
  });
  const fetched = result.files.filter((f) => !f.cached);
  const unverified = result.files.filter((f) => !f.verified).map((f) => f.filename);
  note(
    io,
    `[sit] ${dataset}: ${fetched.length} file(s) fetched, ${result.files.length - fetched.length} already there; files in ${result.readerDir}`,
  );
  if (unverified.length > 0)
    io.err(
      `warning: ${dataset}: no published checksum for ${unverified.join(", ")} (not verified)\n`,
    );
  return result.readerDir;
}
