import { hostname } from "node:os";
import { join } from "node:path";
import type { MetricSink, TrainEvent } from "../events";
import { encodeFileVersionEvent, encodeScalarsEvent, frameRecord } from "../tensorboard/event";
import { AppendFile } from "./file";

let fileCounter = 0;

/**
 * Writes scalars to a TensorBoard event file (`events.out.tfevents.*`) in `logdir`, readable by
 * `tensorboard --logdir`. Tags: `loss/total`, `loss/<term>`, `schedule/{lr,wd,momentum}`,
 * `perf/{images_per_sec,step_ms,data_ms,tensors}`, `monitor/<metric>`. Each record is written to
 * the operating system as soon as its event arrives. Implements the tfevents format itself
 * (TFRecord framing with masked CRC-32C around `Event` protobufs), so it needs no TensorFlow.
 */
export class TensorBoardSink implements MetricSink {
  private readonly file: AppendFile;

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

  onEvent(event: TrainEvent): void {
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
