import { hostname } from "node:os";
import { join } from "node:path";
import { ConfigError, checkNumber, describeValue } from "@sit/core";
import {
  type EncodedImage,
  type MetricSink,
  type TrainEvent,
  type HparamValue,
  encodeFileVersionEvent,
  encodeHparamsEndEvent,
  encodeHparamsStartEvent,
  encodeImageEvent,
  encodeScalarsEvent,
  encodeTextEvent,
  frameRecord,
} from "@sit/train";
import { AppendFile } from "./file";

// Node only (@sit/train/node): TensorBoard event files on disk. The records themselves are the
// main entry's encoders (tensorboard/event.ts).

let fileCounter = 0;

/**
 * Writes scalars to a TensorBoard event file (`events.out.tfevents.*`) in `logdir`, readable by
 * `tensorboard --logdir`. Tags: `loss/total`, `loss/<term>`, `schedule/{lr,wd,momentum}`,
 * `perf/{images_per_sec,step_ms,data_ms,tensors}`, `monitor/<metric>`. Each record is written to
 * the operating system as soon as its event arrives. Implements the tfevents format itself
 * (TFRecord framing with masked CRC-32C around `Event` protobufs), so it needs no TensorFlow.
 *
 * Beyond the events of `fit`, a caller can add pictures ({@link TensorBoardSink.image}), text such
 * as the run's config ({@link TensorBoardSink.text}) and the run's hyper-parameters
 * ({@link TensorBoardSink.hparams}); a run that completes or fails also ends its hparams session
 * (an interrupted one leaves it open for the run that resumes it).
 */
export class TensorBoardSink implements MetricSink {
  private readonly file: AppendFile;
  private hparamsWritten = false;

  constructor(logdir: string) {
    const now = Date.now();
    const name = `events.out.tfevents.${Math.floor(now / 1000)}.${hostname()}.${process.pid}.${fileCounter++}`;
    this.file = new AppendFile(join(logdir, name), "TensorBoardSink");
    this.file.write(frameRecord(encodeFileVersionEvent(now / 1000)));
  }

  /** The event file being written. */
  get path(): string {
    return this.file.path;
  }

  /** A PNG picture on the Images tab under `tag` at `step`. */
  image(tag: string, step: number, image: EncodedImage): void {
    checkNumber("step", step, { integer: true, min: 0 });
    for (const k of ["width", "height"] as const)
      checkNumber(`image.${k}`, image[k], { integer: true, min: 1 });
    this.file.write(frameRecord(encodeImageEvent(Date.now() / 1000, step, tag, image)));
  }

  /** Markdown on the Text tab under `tag` at `step` (a JSON config reads well as a code block). */
  text(tag: string, markdown: string, step = 0): void {
    checkNumber("step", step, { integer: true, min: 0 });
    this.file.write(frameRecord(encodeTextEvent(Date.now() / 1000, step, tag, markdown)));
  }

  /**
   * The run's hyper-parameters for the HParams tab (numbers, strings, booleans; anything else is
   * refused by name). `groupName` groups runs that differ only in their seed.
   */
  hparams(values: Readonly<Record<string, HparamValue>>, groupName = ""): void {
    for (const [k, v] of Object.entries(values))
      if (
        !["number", "string", "boolean"].includes(typeof v) ||
        (typeof v === "number" && !Number.isFinite(v))
      )
        throw new ConfigError(
          `values.${k}: expected a finite number, a string or a boolean, got ${describeValue(v)}`,
        );
    this.file.write(frameRecord(encodeHparamsStartEvent(Date.now() / 1000, values, groupName)));
    this.hparamsWritten = true;
  }

  onEvent(event: TrainEvent): void {
    if (
      event.type === "end" &&
      this.hparamsWritten &&
      (event.reason === "completed" || event.reason === "error")
    )
      this.file.write(
        frameRecord(
          encodeHparamsEndEvent(
            event.wallTime / 1000,
            event.reason === "completed" ? "success" : "failure",
          ),
        ),
      );
    const scalars: Array<[string, number]> = [];
    if (event.type === "step") {
      scalars.push(["loss/total", event.loss]);
      for (const [k, v] of Object.entries(event.terms)) scalars.push([`loss/${k}`, v]);
      if (event.lr !== undefined) scalars.push(["schedule/lr", event.lr]);
      if (event.wd !== undefined) scalars.push(["schedule/wd", event.wd]);
      if (event.momentum !== undefined) scalars.push(["schedule/momentum", event.momentum]);
      scalars.push(["perf/images_per_sec", event.imagesPerSec]);
      scalars.push(["perf/step_ms", event.stepMs]);
      scalars.push(["perf/data_ms", event.dataMs]);
      scalars.push(["perf/tensors", event.tensors]);
    } else if (event.type === "monitor") {
      for (const [k, v] of Object.entries(event.metrics)) scalars.push([`monitor/${k}`, v]);
    } else {
      return;
    }
    const step = Math.max(0, event.step);
    this.file.write(frameRecord(encodeScalarsEvent(event.wallTime / 1000, step, scalars)));
  }

  close(): void {
    this.file.close();
  }
}
