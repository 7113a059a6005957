import type { MetricSink, TrainEvent } from "@sit/train";
import { AppendFile } from "./file";

// Node only (@sit/train/node): the events as JSON lines in a file.

/** Options of {@link JsonlSink}. */
export interface JsonlSinkOptions {
  /** Event types to record; all by default. */
  types?: ReadonlyArray<TrainEvent["type"]>;
}

// JSON has no NaN/Infinity; JSON.stringify would write null and lose exactly the values a
// diverged run needs to show, so write them as strings.
function replacer(_key: string, value: unknown): unknown {
  if (typeof value === "number" && !Number.isFinite(value)) return String(value);
  return value;
}

/**
 * Appends every event as one JSON object per line (JSON Lines) to a file, flushed to the operating
 * system on every line. Non-finite numbers are written as the strings "NaN", "Infinity",
 * "-Infinity". Appending means a resumed run continues the same file.
 */
export class JsonlSink implements MetricSink {
  private readonly file: AppendFile;
  private readonly types: ReadonlySet<string> | undefined;

  constructor(path: string, options: JsonlSinkOptions = {}) {
    this.file = new AppendFile(path, "JsonlSink");
    this.types = options.types ? new Set(options.types) : undefined;
  }

  /** The file being written. */
  get path(): string {
    return this.file.path;
  }

  onEvent(event: TrainEvent): void {
    if (this.types && !this.types.has(event.type)) return;
    this.file.write(`${JSON.stringify(event, replacer)}\n`);
  }

  close(): void {
    this.file.close();
  }
}
