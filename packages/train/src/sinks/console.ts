import { checkNumber } from "@sit/core";
import type { MetricSink, StepEvent, TrainEvent } from "../events";
import { formatDuration, formatNumber } from "./format";

/** Where the console sink writes: `process.stderr` or anything shaped like it. */
export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

/** Options of {@link ConsoleProgressSink}. */
export interface ConsoleProgressOptions {
  /** Output stream; `process.stderr` by default. */
  stream?: ProgressStream;
  /** Force TTY mode on or off; by default `stream.isTTY`. */
  tty?: boolean;
  /** Without a TTY: seconds between plain progress lines (default 10). */
  intervalSec?: number;
  /** On a TTY: minimum milliseconds between redraws of the progress line (default 100). */
  redrawMs?: number;
  /** Width of the bar in characters (default 20). */
  barWidth?: number;
  /** Clock in milliseconds (tests); `Date.now` by default. */
  now?: () => number;
}

const CLEAR_LINE = "\r\x1b[2K";

/** How the end line words each stop reason ("aborted" alone would read as a failure). */
const END_WORDS: Record<string, string> = {
  completed: "completed",
  signal: "stopped by a signal",
  aborted: "aborted",
  "time-budget": "stopped at its time budget",
  error: "failed",
};

/** How a checkpoint line words its reason. */
const CHECKPOINT_WORDS: Record<string, string> = {
  "time-budget": "time budget",
};

/**
 * A progress display: epoch, bar, step, loss and its terms, learning rate, images/s and ETA.
 * On a TTY it keeps one line up to date in place (at most every `redrawMs`); otherwise it prints a
 * plain line every `intervalSec` (plus the first and last step), so that logs stay readable.
 * Epoch ends, monitor results and checkpoints get lines of their own.
 */
export class ConsoleProgressSink implements MetricSink {
  private readonly stream: ProgressStream;
  private readonly tty: boolean;
  private readonly intervalMs: number;
  private readonly redrawMs: number;
  private readonly barWidth: number;
  private readonly now: () => number;
  private lastDraw = Number.NEGATIVE_INFINITY;
  private lineShown = false;
  private lastStep: StepEvent | undefined;
  private lastPrinted: StepEvent | undefined;
  private firstStep: StepEvent | undefined;
  private smoothedImagesPerSec: number | undefined;

  constructor(options: ConsoleProgressOptions = {}) {
    this.stream = options.stream ?? defaultStream();
    this.tty = options.tty ?? this.stream.isTTY === true;
    this.intervalMs = checkNumber("intervalSec", options.intervalSec ?? 10, { min: 0 }) * 1000;
    this.redrawMs = checkNumber("redrawMs", options.redrawMs ?? 100, { min: 0 });
    this.barWidth = checkNumber("barWidth", options.barWidth ?? 20, { min: 0, integer: true });
    this.now = options.now ?? Date.now;
  }

  onEvent(event: TrainEvent): void {
    switch (event.type) {
      case "start": {
        const total = event.totalSteps !== undefined ? ` of ${event.totalSteps}` : "";
        const from = event.resumedFrom ? ` (resumed from ${event.resumedFrom})` : "";
        this.line(`training ${event.recipe} from step ${event.startStep}${total}${from}`);
        break;
      }
      case "step":
        this.onStep(event);
        break;
      case "epoch":
        // Keep each epoch's final state on screen (unless that plain line was just printed).
        if (this.lastStep && (this.tty || this.lastPrinted !== this.lastStep))
          this.line(this.progressText(this.lastStep));
        break;
      case "monitor": {
        const parts = Object.entries(event.metrics).map(([k, v]) => `${k} ${formatNumber(v)}`);
        this.line(
          `monitor @ step ${event.step + 1} (epoch ${event.epoch + 1}): ${parts.join(", ")} [${formatDuration(event.durationSec)}]`,
        );
        break;
      }
      case "checkpoint":
        this.line(
          `checkpoint (${CHECKPOINT_WORDS[event.reason] ?? event.reason}) @ step ${event.step + 1}: ${event.path}`,
        );
        break;
      case "warning":
        // fit prints warnings through its onWarning callback (console.warn by default) right
        // after this event: only make room for it.
        if (this.tty && this.lineShown) {
          this.stream.write(CLEAR_LINE);
          this.lineShown = false;
          this.lastDraw = Number.NEGATIVE_INFINITY;
        }
        break;
      case "end": {
        if (this.lastStep && this.lineShown) this.line(this.progressText(this.lastStep));
        const err = event.error ? `: ${event.error}` : "";
        this.line(
          `${END_WORDS[event.reason] ?? event.reason} after ${event.steps} steps in ${formatDuration(event.elapsedSec)}${err}`,
        );
        break;
      }
    }
  }

  private onStep(event: StepEvent): void {
    if (!this.firstStep) this.firstStep = event;
    this.lastStep = event;
    const ips = event.imagesPerSec;
    if (Number.isFinite(ips))
      this.smoothedImagesPerSec =
        this.smoothedImagesPerSec === undefined ? ips : 0.9 * this.smoothedImagesPerSec + 0.1 * ips;
    const t = this.now();
    const last = event.totalSteps !== undefined && event.step + 1 >= event.totalSteps;
    if (this.tty) {
      if (!last && t - this.lastDraw < this.redrawMs) return;
      this.lastDraw = t;
      this.stream.write(CLEAR_LINE + this.fit(this.progressText(event)));
      this.lineShown = true;
    } else {
      if (!last && event !== this.firstStep && t - this.lastDraw < this.intervalMs) return;
      this.lastDraw = t;
      this.lastPrinted = event;
      this.stream.write(`${this.progressText(event)}\n`);
    }
  }

  /** Write a line of its own, keeping the TTY progress line below it. */
  private line(text: string): void {
    if (this.tty && this.lineShown) {
      this.stream.write(`${CLEAR_LINE}${text}\n`);
      this.lineShown = false;
      this.lastDraw = Number.NEGATIVE_INFINITY;
    } else {
      this.stream.write(`${text}\n`);
    }
  }

  private fit(text: string): string {
    const cols = this.stream.columns;
    return cols && text.length > cols - 1 ? text.slice(0, Math.max(0, cols - 1)) : text;
  }

  private progressText(e: StepEvent): string {
    const done = e.step + 1;
    const parts: string[] = [];
    parts.push(
      e.stepsPerEpoch !== undefined && e.totalSteps !== undefined
        ? `epoch ${e.epoch + 1}/${Math.ceil(e.totalSteps / e.stepsPerEpoch)}`
        : `epoch ${e.epoch + 1}`,
    );
    if (e.totalSteps !== undefined && e.totalSteps > 0) {
      const frac = Math.min(1, done / e.totalSteps);
      if (this.barWidth > 0) {
        const filled = Math.round(frac * this.barWidth);
        parts.push(`[${"#".repeat(filled)}${"-".repeat(this.barWidth - filled)}]`);
      }
      parts.push(`${Math.floor(frac * 100)}% ${done}/${e.totalSteps}`);
    } else {
      parts.push(`step ${done}`);
    }
    let loss = `loss ${formatNumber(e.loss)}`;
    const terms = Object.entries(e.terms);
    if (terms.length > 0)
      loss += ` (${terms.map(([k, v]) => `${k} ${formatNumber(v)}`).join(", ")})`;
    parts.push(loss);
    if (e.lr !== undefined) parts.push(`lr ${formatNumber(e.lr)}`);
    if (this.smoothedImagesPerSec !== undefined)
      parts.push(`${formatNumber(this.smoothedImagesPerSec)} img/s`);
    const eta = this.eta(e);
    const budgetLeft =
      e.budgetEndSec !== undefined ? Math.max(0, e.budgetEndSec - e.elapsedSec) : undefined;
    // A time budget that ends the run before its planned steps do sets the ETA.
    if (budgetLeft !== undefined && (eta === undefined || budgetLeft < eta))
      parts.push(`ETA ${formatDuration(budgetLeft)} (time budget)`);
    else
      parts.push(
        eta !== undefined ? `ETA ${formatDuration(eta)}` : `${formatDuration(e.elapsedSec)}`,
      );
    return parts.join(" ");
  }

  /** Seconds left, from the mean step time since the first step seen (which may include warm-up). */
  private eta(e: StepEvent): number | undefined {
    if (e.totalSteps === undefined) return undefined;
    const first = this.firstStep;
    if (!first) return undefined;
    const steps = e.step - first.step;
    const secPerStep =
      steps > 0 ? (e.elapsedSec - first.elapsedSec) / steps : (e.stepMs + e.dataMs) / 1000;
    return Math.max(0, e.totalSteps - e.step - 1) * secPerStep;
  }
}

/**
 * Node's `process.stderr`; in a web page (no process), the browser console, a line per write
 * (a page has no terminal line to redraw).
 */
function defaultStream(): ProgressStream {
  const stderr = (globalThis as { process?: { stderr?: ProgressStream } }).process?.stderr;
  if (stderr) return stderr;
  return { write: (text: string) => void console.info(text.replace(/\n$/, "")), isTTY: false };
}
