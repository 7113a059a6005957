import * as tf from "@tensorflow/tfjs";
import { type RecordedStep, StepCapture, copyOnDevice, recordStep } from "@sit/kernels";

// When a recipe's training steps are captured and replayed on webgpu (@sit/kernels' StepCapture:
// the step's WebGPU calls made again with no tfjs and no kernel code in between). After a few
// steps run as usual (pipelines built, tfjs's pool settled), two consecutive steps are recorded
// and, if they made the same calls, the second becomes the capture; every later step is a replay
// of it with its own inputs and per-step values, until a replay's check fails (another batch
// shape, a checkpoint read of the weights, a load) and the steps run as usual again. A recipe
// whose captures keep failing stops trying.

/** A step's per-step values, drawn without advancing anything, and how to make them count. */
export interface DrawnStep {
  /** The values the step writes to the device, in the order it writes them. */
  uploads: ArrayBufferView[];
  /** Advance the recipe's host state as the step would have (generators, optimiser step count). */
  commit(): void;
}

/** How a recipe's steps were captured and replayed so far. */
export interface StepCaptureStatus {
  /** Steps replayed from a capture. */
  replays: number;
  /** Captures made. */
  captures: number;
  /** Why the last capture was not made or not replayed, or null. */
  lastRefusal: string | null;
}

/** Steps run as usual before two are recorded for a capture. */
const STEPS_BEFORE_CAPTURE = 2;
/**
 * Captures that failed (not made, or refused before their first replay) before giving up. A
 * refusal after replays is a change of circumstances (a checkpoint read the weights), not a failure.
 */
const ATTEMPTS = 3;

/** A recipe's captured steps (see the top of this file). */
export class CapturedSteps {
  /** Whether steps are captured at all (set false to run every step as usual). */
  enabled = true;
  readonly status: StepCaptureStatus = { replays: 0, captures: 0, lastRefusal: null };
  private capture: StepCapture | null = null;
  private replaysOfCapture = 0;
  private first: {
    recorded: RecordedStep<tf.Tensor>;
    uploads: ArrayBufferView[];
    inputs: tf.Tensor[];
  } | null = null;
  private failures = 0;
  private usualSteps = 0;

  /** Drop the capture (the recipe's state was replaced under it, or the recipe is disposed). */
  reset(): void {
    this.capture?.dispose();
    this.capture = null;
    this.dropFirst();
    this.usualSteps = 0;
  }

  /**
   * One step on `inputs` (its batch's tensors): a replay when captured; else `run` (the step's
   * tfjs work, returning its output tensor), recorded when a capture is due. `draw` gives the
   * step's per-step values without advancing anything; a replay commits them.
   */
  launch<I extends tf.Tensor[]>(
    inputs: I,
    draw: () => DrawnStep,
    run: (inputs: I) => tf.Tensor,
  ): tf.Tensor {
    if (!this.enabled || tf.getBackend() !== "webgpu") {
      this.reset();
      return run(inputs);
    }
    if (this.capture) {
      const drawn = draw();
      const replayed = this.capture.tryReplay(inputs, drawn.uploads);
      if (typeof replayed !== "string") {
        drawn.commit();
        this.status.replays++;
        this.replaysOfCapture++;
        return replayed[0];
      }
      this.refused(replayed, this.replaysOfCapture === 0);
      this.capture.dispose();
      this.capture = null;
    }
    if (this.failures >= ATTEMPTS || this.usualSteps++ < STEPS_BEFORE_CAPTURE) {
      this.dropFirst();
      return run(inputs);
    }
    // Not committed: the step itself advances the generators and counts the optimiser's step.
    const drawn = draw();
    // (Copies of the same shapes and dtypes: what `run` takes.)
    const own = inputs.map(copyOnDevice) as unknown as I;
    let recorded: RecordedStep<tf.Tensor>;
    try {
      recorded = recordStep(() => run(own));
    } catch (e) {
      tf.dispose(own);
      this.dropFirst();
      throw e;
    }
    if (!this.first) {
      this.first = { recorded, uploads: drawn.uploads, inputs: own };
      return recorded.value;
    }
    const first = this.first;
    this.first = null;
    tf.dispose(first.inputs);
    const made = StepCapture.make(first.recorded, first.uploads, recorded, drawn.uploads, {
      inputs: own,
      outputs: [recorded.value],
    });
    if (typeof made === "string") {
      tf.dispose(own);
      this.refused(made, true);
      return recorded.value;
    }
    this.capture = made;
    this.replaysOfCapture = 0;
    this.status.captures++;
    return made.outputCopies()[0];
  }

  private refused(why: string, failed: boolean): void {
    this.status.lastRefusal = why;
    if (failed) this.failures++;
    this.usualSteps = 0;
  }

  private dropFirst(): void {
    if (this.first) tf.dispose(this.first.inputs);
    this.first = null;
  }
}
