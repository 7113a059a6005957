import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { dirname } from "node:path";
import { ConfigError, IOError } from "@sit/core";
import { writeFileAtomic } from "@sit/core/node";

/** One finished stage in a {@link StageStore} file. */
export interface StageRecord<R = unknown> {
  result: R;
  seconds: number;
  finishedAt: string;
}

interface StoreFile {
  format: "sitjs-stages/1";
  fingerprint: string;
  meta: Record<string, unknown>;
  stages: Record<string, StageRecord>;
}

/**
 * A JSON file of finished stages, for runs that resume: {@link StageStore.run} skips a stage whose
 * result is already recorded, and records each result (atomically) as soon as it is known, so an
 * interrupted run loses at most the stage in progress. The file belongs to one configuration
 * (`fingerprint`): opening it with another throws, instead of mixing results of different runs.
 */
export class StageStore {
  private data: StoreFile;

  constructor(
    readonly path: string,
    fingerprint: unknown,
    meta: Record<string, unknown> = {},
  ) {
    const print = JSON.stringify(fingerprint);
    if (existsSync(path)) {
      let old: StoreFile;
      try {
        old = JSON.parse(readFileSync(path, "utf8")) as StoreFile;
      } catch (err) {
        throw new IOError(`${path}: not a readable results file (${(err as Error).message})`, {
          cause: err,
        });
      }
      if (old.format !== "sitjs-stages/1" || typeof old.stages !== "object")
        throw new IOError(`${path}: not a results file of this tool (format ${old.format})`);
      if (old.fingerprint !== print)
        throw new ConfigError(
          `${path}: holds results of another configuration (${old.fingerprint}); this run is ${print}. Use another output folder, or delete the file to start over`,
        );
      this.data = { ...old, meta: { ...old.meta, ...meta } };
    } else {
      this.data = { format: "sitjs-stages/1", fingerprint: print, meta, stages: {} };
    }
  }

  /** The recorded result of `name`, if that stage has finished. */
  get<R>(name: string): R | undefined {
    return this.data.stages[name]?.result as R | undefined;
  }

  /** Every finished stage, by name. */
  get stages(): Readonly<Record<string, StageRecord>> {
    return this.data.stages;
  }

  get meta(): Readonly<Record<string, unknown>> {
    return this.data.meta;
  }

  /** Record a stage's result and write the file. */
  set<R>(name: string, result: R, seconds = 0): void {
    this.data.stages[name] = { result, seconds, finishedAt: new Date().toISOString() };
    this.save();
  }

  /** Merge into the file's meta data and write it. */
  setMeta(meta: Record<string, unknown>): void {
    this.data.meta = { ...this.data.meta, ...meta };
    this.save();
  }

  /**
   * The stage's recorded result, or run `fn` and record what it returns. `fn` may return
   * `undefined` to say the stage did not finish (e.g. interrupted): nothing is recorded then.
   */
  async run<R>(name: string, fn: () => Promise<R | undefined>): Promise<R | undefined> {
    const done = this.get<R>(name);
    if (done !== undefined) return done;
    const t0 = performance.now();
    const result = await fn();
    if (result !== undefined) this.set(name, result, (performance.now() - t0) / 1000);
    return result;
  }

  private save(): void {
    mkdirSync(dirname(this.path), { recursive: true });
    writeFileAtomic(this.path, `${JSON.stringify(this.data, null, 2)}\n`);
  }
}
