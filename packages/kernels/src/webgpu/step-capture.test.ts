import * as tf from "@tensorflow/tfjs";
import { Rng } from "@sit/core";
import { afterAll, describe, expect, it } from "vitest";
import { settleBufferPool } from "./buffer-pool";
import { webgpuPixelSources } from "./gmml";
import { bumpMirrorEpoch } from "./mirrors";
import { type RecordedStep, StepCapture, copyOnDevice, recordStep } from "./step-capture";
import { useWebgpu } from "./testing";

// A small "training step" made of this package's kernels and tfjs's own: per-step host values
// uploaded by a kernel (a pixel-sources plan and its noise), an input, an output, and a variable
// assigned new values every step (as a BatchNorm's running statistics are). Replays of a capture
// must give exactly what running the step gives.

const SHAPE: [number, number, number, number] = [2, 4, 4, 3];
const PIXELS = SHAPE[0] * SHAPE[1] * SHAPE[2];

/** Step k's per-step values, drawn from `rng`: a pixel-sources plan with 4 noise pixels. */
function draw(rng: Rng): [Int32Array, Float32Array] {
  const source = new Int32Array(PIXELS);
  for (let p = 0; p < PIXELS; p++) source[p] = rng.int(0, PIXELS);
  for (let k = 0; k < 4; k++) source[rng.int(0, PIXELS)] = -2 - k;
  return [source, Float32Array.from({ length: 4 * SHAPE[3] }, () => rng.float())];
}

/** What the step writes: each of its two pixel-sources calls uploads the plan and its noise. */
const written = ([source, noise]: [Int32Array, Float32Array]) => [source, noise, source, noise];

/** Step k's input batch. */
const input = (k: number) => tf.randomNormal(SHAPE, 0, 1, "float32", 100 + k) as tf.Tensor4D;

/** The step: out = plan(images) + state; state ← plan(state) + out. */
function step(
  state: tf.Variable,
  images: tf.Tensor4D,
  [source, noise]: [Int32Array, Float32Array],
) {
  settleBufferPool();
  return tf.tidy(() => {
    const out = tf.add(webgpuPixelSources(images, source, noise), state);
    state.assign(tf.add(webgpuPixelSources(state as tf.Tensor as tf.Tensor4D, source, noise), out));
    return out;
  });
}

describe("StepCapture (webgpu)", () => {
  afterAll(async () => {
    await tf.setBackend("cpu");
  });

  it("replays a recorded step exactly, with new inputs, uploads and a variable's state, without leaks", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const STEPS = 7;
    // The reference: every step run as usual.
    const ref = tf.variable(tf.zeros(SHAPE));
    const rngRef = Rng.seed(5);
    const expected: Float32Array[] = [];
    for (let k = 0; k < STEPS; k++) {
      const x = input(k);
      const out = step(ref, x, draw(rngRef));
      expected.push((await out.data()) as Float32Array);
      tf.dispose([x, out]);
    }
    const expectedState = (await ref.data()) as Float32Array;

    const state = tf.variable(tf.zeros(SHAPE));
    const rng = Rng.seed(5);
    const got: Float32Array[] = [];
    const recorded: {
      r: RecordedStep<tf.Tensor>;
      uploads: [Int32Array, Float32Array];
      own: tf.Tensor[];
    }[] = [];
    let capture: StepCapture | null = null;
    let tensors = -1;
    for (let k = 0; k < STEPS; k++) {
      const x = input(k);
      const uploads = draw(rng);
      let out: tf.Tensor;
      if (k === 0) out = step(state, x, uploads);
      else if (k <= 2) {
        const own = [copyOnDevice(x)];
        const r = recordStep(() => step(state, own[0] as tf.Tensor4D, uploads));
        recorded.push({ r, uploads, own });
        out = r.value;
        if (k === 2) {
          const made = StepCapture.make(
            recorded[0].r,
            written(recorded[0].uploads),
            r,
            written(uploads),
            {
              inputs: own,
              outputs: [r.value],
            },
          );
          if (typeof made === "string") throw new Error(made);
          capture = made;
          tf.dispose(recorded[0].own);
          out = capture.outputCopies()[0];
        }
      } else {
        expect(capture!.check([x], written(uploads))).toBeNull();
        out = capture!.replay([x], written(uploads))[0];
        // Replays leave the tensor count as it was.
        if (tensors < 0) tensors = tf.memory().numTensors;
        else expect(tf.memory().numTensors).toBe(tensors);
      }
      got.push((await out.data()) as Float32Array);
      tf.dispose([out, x]);
    }
    for (let k = 0; k < STEPS; k++)
      expect(Array.from(got[k]), `step ${k}`).toEqual(Array.from(expected[k]));
    expect(Array.from((await state.data()) as Float32Array)).toEqual(Array.from(expectedState));

    // What a replay refuses: another input shape, an upload of another size, a change to where
    // the host knows parameters to lie.
    const w = written(draw(rng));
    const [small, next] = [tf.zeros([1, 4, 4, 3]), input(9)];
    expect(capture!.check([small], w)).toMatch(/input 0 is float32 \[1,4,4,3\]/);
    const shorter = [w[0], (w[1] as Float32Array).subarray(3), w[2], w[3]];
    expect(capture!.check([next], shorter)).toMatch(/upload 1 has 36 bytes/);
    bumpMirrorEpoch();
    expect(capture!.check([next], w)).toMatch(/where the host knows parameters to lie changed/);
    capture!.dispose();
    expect(capture!.check([next], w)).toMatch(/disposed/);
    tf.dispose([small, next, state, ref]);
  }, 120_000);

  it("is not made when an upload is not written by the step, or the steps differ", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const state = tf.variable(tf.zeros(SHAPE));
    const rng = Rng.seed(6);
    const x = input(1);
    step(state, x, draw(rng)).dispose();
    const rec = () => {
      const uploads = draw(rng);
      const own = [copyOnDevice(x)];
      return { r: recordStep(() => step(state, own[0] as tf.Tensor4D, uploads)), uploads, own };
    };
    const [a, b] = [rec(), rec()];
    const extra = new Float32Array([1, 2, 3, 4, 5]);
    expect(
      StepCapture.make(a.r, written(a.uploads), b.r, [...written(b.uploads), extra], {
        inputs: b.own,
        outputs: [b.r.value],
      }),
    ).toMatch(/upload 4 \(20 bytes\) is not written by the step/);
    // Without the noise among the uploads, its write carries other bytes in the second step.
    expect(
      StepCapture.make(a.r, [a.uploads[0], a.uploads[0]], b.r, [b.uploads[0], b.uploads[0]], {
        inputs: b.own,
        outputs: [b.r.value],
      }),
    ).toMatch(/carried other bytes in the second step/);
    tf.dispose([x, state, a.r.value, b.r.value, ...a.own, ...b.own]);
  }, 120_000);
});
