import * as tf from "@tensorflow/tfjs";
import { ConfigError, ShapeError, checkNumber, invalidArgument } from "../errors";
import type { Gradients } from "./adamw";

/**
 * Sums gradients over `steps` micro-batches, so a large batch can be trained as k smaller ones:
 * `add(grads)` after each micro-batch returns true once k have been added; `result()` then hands
 * back their mean (or sum) and starts over. Holds one tensor per parameter; leak-free.
 */
export class GradientAccumulator {
  private sums: Map<string, tf.Tensor> = new Map();
  private added = 0;
  readonly average: boolean;

  constructor(
    readonly steps: number,
    options: { average?: boolean } = {},
  ) {
    checkNumber("steps", steps, { integer: true, min: 1 });
    this.average = options.average ?? true;
  }

  /** Micro-batches added since the last `result()`. */
  get count(): number {
    return this.added;
  }

  /** True when `steps` micro-batches have been added. */
  get ready(): boolean {
    return this.added >= this.steps;
  }

  /** Add one micro-batch's gradients (not disposed: the caller owns them). Returns {@link ready}. */
  add(grads: Gradients): boolean {
    if (grads === null || typeof grads !== "object")
      throw invalidArgument("grads", grads, "an object mapping names to gradient tensors");
    if (this.ready)
      throw new ConfigError(
        `GradientAccumulator.add: already holds ${this.steps} micro-batches; call result() first`,
      );
    const entries = Object.entries(grads);
    if (this.added > 0) {
      const names = entries.map(([k]) => k).sort();
      const own = [...this.sums.keys()].sort();
      if (names.join("\n") !== own.join("\n"))
        throw new ConfigError(
          `GradientAccumulator.add: expected gradients for the same parameters as the first micro-batch (${own.join(", ")}), got ${names.join(", ")}`,
        );
    }
    for (const [k, g] of entries) {
      if (!(g instanceof tf.Tensor))
        throw invalidArgument(`grads[${JSON.stringify(k)}]`, g, "a tensor");
      const prev = this.sums.get(k);
      if (prev && !tf.util.arraysEqual(prev.shape, g.shape))
        throw new ShapeError(
          `grads[${JSON.stringify(k)}]: expected shape [${prev.shape.join(", ")}], got [${g.shape.join(", ")}]`,
        );
    }
    for (const [k, g] of entries) {
      const prev = this.sums.get(k);
      this.sums.set(k, prev ? tf.tidy(() => prev.add(g)) : g.clone());
      prev?.dispose();
    }
    this.added++;
    return this.ready;
  }

  /** The accumulated gradients (mean over the micro-batches unless `average: false`); resets. The caller owns them. */
  result(): Gradients {
    if (this.added === 0)
      throw new ConfigError("GradientAccumulator.result: no micro-batch has been added");
    const out: Gradients = {};
    const scale = this.average ? 1 / this.added : 1;
    for (const [k, s] of this.sums) {
      out[k] = scale === 1 ? s : tf.tidy(() => s.mul(scale));
      if (scale !== 1) s.dispose();
    }
    this.sums = new Map();
    this.added = 0;
    return out;
  }

  /** Drop what has been accumulated. */
  reset(): void {
    for (const s of this.sums.values()) s.dispose();
    this.sums = new Map();
    this.added = 0;
  }

  /** Same as {@link reset}. */
  dispose(): void {
    this.reset();
  }
}
