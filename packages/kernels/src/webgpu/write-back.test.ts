import * as tf from "@tensorflow/tfjs";
import { AdamW } from "@sit/core";
import { countBufferCopies, expectClose, loadFixture } from "@sit/testing";
import { afterAll, describe, expect, it } from "vitest";
import { linear } from "../linear";
import { transformerStack } from "../transformer-stack";
import { B, D, HEADS, N, asVariables, flat, weights } from "./block-fixtures";
import {
  type WebGpuInternals,
  bufferOf,
  copyElements,
  newTensorInfo,
  tensorDataOf,
  webgpuInternals,
} from "./flat-buffers";
import { bumpFlatVersion, noteMirror } from "./mirrors";
import { fill, useWebgpu } from "./testing";
import {
  deferWriteBack,
  flushWriteBacks,
  isWriteBackDeferred,
  setWebgpuWriteBackDeferral,
} from "./write-back";
import "./flat-register";
import "./register";

// The flat AdamW leaves a parameter at an aligned range of its flat buffer without the copy into
// its own buffer: this package's kernels bind the flat range, and anything else that reaches the
// tensor's data through tfjs gets the copy recorded first. These pin the values against
// adamw.safetensors (PyTorch) on every path that reads such a parameter, and the copies saved.

const NAMES = ["w", "bias", "pos"];

/** x·W on the host, in float64 (x [rows, k], W [k, n]). */
function matMulOnHost(x: Float32Array, w: Float32Array, k: number, n: number): Float32Array {
  const rows = x.length / k;
  const y = new Float32Array(rows * n);
  for (let r = 0; r < rows; r++)
    for (let j = 0; j < n; j++) {
      let acc = 0;
      for (let i = 0; i < k; i++) acc += x[r * k + i] * w[i * n + j];
      y[r * n + j] = acc;
    }
  return y;
}

/** The fixture's AdamW (w and pos decayed, bias not; per-tensor clipping at 3). */
function fixtureOptimiser(tensors: Record<string, tf.Tensor>, lr: number, wd: number) {
  // Each variable owns its buffer (no other tensor shares its data): updated in place.
  const vars = NAMES.map((n) => tf.tidy(() => tf.variable(tf.add(tensors[`init.${n}`], 0))));
  const [w, bias, pos] = vars;
  const opt = new AdamW(
    [
      {
        name: "decay",
        params: [
          ["w", w],
          ["pos", pos],
        ],
      },
      { name: "no_decay", params: [["bias", bias]], weightDecay: 0 },
    ],
    { lr, weightDecay: wd, clipPerTensor: 3 },
  );
  return { vars, opt };
}

describe("deferred write-back of flat-updated parameters (webgpu)", () => {
  afterAll(async () => {
    setWebgpuWriteBackDeferral(true);
    await tf.setBackend("cpu");
  });

  it("binds the flat range in this package's kernels, writes back before tfjs reads, matches adamw.safetensors", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const { tensors, metadata } = loadFixture("adamw.safetensors");
    const lr = metadata.lr as number[];
    const wd = metadata.wd_group0 as number[];
    const { vars, opt } = fixtureOptimiser(tensors, lr[0], wd[0]);
    const [w, bias, pos] = vars;
    const x = tf.tensor2d(
      Float32Array.from({ length: 5 * 8 }, (_, i) => Math.sin(i)),
      [5, 8],
    );
    const xHost = (await x.data()) as Float32Array;
    for (let s = 1; s <= 3; s++) {
      opt.setLr(lr[s - 1]).setWeightDecay(wd[s - 1], "decay");
      const grads = Object.fromEntries(NAMES.map((n) => [n, tensors[`grad.step${s}.${n}`]]));
      // Step 1 gathers the parameters (3) and the gradients (3) and copies the unaligned bias
      // and pos back (2); then the gradients and those two. w (48 floats at offset 0) waits.
      const copies = await countBufferCopies(() => opt.step(grads));
      expect(copies, `step ${s}`).toBe(s === 1 ? 8 : 5);
      expect(vars.map((v) => isWriteBackDeferred(v))).toEqual([true, false, false]);
      // Deferred, w holds no buffer of its own (it went back to the pool).
      expect(tensorDataOf(webgpuInternals(tf.backend()), w.dataId).resource).toBeNull();
      const expected = (await tensors[`param.step${s}.w`].data()) as Float32Array;
      // This package's GEMM binds w's range of the flat buffer: no copy, w stays deferred.
      let y: tf.Tensor | undefined;
      expect(await countBufferCopies(() => (y = linear(x, w)))).toBe(0);
      expect(isWriteBackDeferred(w)).toBe(true);
      expectClose(await (y as tf.Tensor).data(), matMulOnHost(xHost, expected, 8, 6), 1e-5, "x·W");
      if (s === 2) {
        // A tfjs kernel reads w's own buffer: the copy is recorded first (once).
        let z: tf.Tensor | undefined;
        expect(await countBufferCopies(() => (z = tf.relu(w)))).toBe(1);
        expect(isWriteBackDeferred(w)).toBe(false);
        expectClose(
          await (z as tf.Tensor).data(),
          expected.map((v) => Math.max(v, 0)),
          1e-5,
          "relu(w)",
        );
        tf.dispose(z);
      }
      for (const [k, n] of NAMES.entries())
        expectClose(
          await vars[k].data(),
          await tensors[`param.step${s}.${n}`].data(),
          1e-5,
          `step ${s} ${n}`,
        );
      tf.dispose(y);
    }
    void bias;
    void pos;
    opt.dispose();
    tf.dispose([...vars, x, ...Object.values(tensors)]);
  });

  it("a tensor sharing a deferred buffer keeps its values when the flat buffer is written again, and disposing the optimiser writes back first", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const { tensors, metadata } = loadFixture("adamw.safetensors");
    const lr = metadata.lr as number[];
    const wd = metadata.wd_group0 as number[];
    const { vars, opt } = fixtureOptimiser(tensors, lr[0], wd[0]);
    const [w] = vars;
    const step = (s: number) => {
      opt.setLr(lr[s - 1]).setWeightDecay(wd[s - 1], "decay");
      opt.step(Object.fromEntries(NAMES.map((n) => [n, tensors[`grad.step${s}.${n}`]])));
    };
    step(1);
    expect(isWriteBackDeferred(w)).toBe(true);
    // A clone shares w's data (a reference, no values read: still deferred). Step 2 then gives w
    // a fresh tensor (its data is shared), so the shared data is written back before the flat
    // buffer is overwritten, and the clone keeps step 1's values.
    const kept = w.clone();
    expect(isWriteBackDeferred(kept)).toBe(true);
    step(2);
    expect([isWriteBackDeferred(kept), isWriteBackDeferred(w)]).toEqual([false, false]);
    expectClose(await kept.data(), await tensors["param.step1.w"].data(), 1e-5, "clone");
    step(3);
    expect(isWriteBackDeferred(w)).toBe(true);
    // Taking and releasing a reference (as tfjs's tape does with a weight it saves) reads no
    // values: w stays deferred.
    w.clone().dispose();
    expect(isWriteBackDeferred(w)).toBe(true);
    // The flat buffer goes with the optimiser: w is written back before it.
    opt.dispose();
    expect(isWriteBackDeferred(w)).toBe(false);
    expectClose(await w.data(), await tensors["param.step3.w"].data(), 1e-5, "after dispose");
    tf.dispose([...vars, kept, ...Object.values(tensors)]);
  });

  it("disposing a deferred tensor records no copy, a flush before the flat is written keeps the values, and with deferral off the copy is made at once", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const b: WebGpuInternals = webgpuInternals(tf.backend());
    const flatValues = Float32Array.from({ length: 192 }, (_, i) => i);
    const flat = newTensorInfo(b, [192], flatValues);
    const deferTo = (offset: number) => {
      const t = tf.zeros([64]);
      noteMirror(t, flat, offset, bumpFlatVersion(flat));
      deferWriteBack(b, t, flat, offset);
      return t;
    };
    const gone = deferTo(64);
    expect(await countBufferCopies(() => gone.dispose())).toBe(0);
    const read = deferTo(128);
    expect(Array.from((await read.data()) as Float32Array)).toEqual(
      Array.from(flatValues.slice(128)),
    );
    expect(isWriteBackDeferred(read)).toBe(false);
    read.dispose();
    // Before the flat buffer is overwritten, a tensor that the writer will not re-note is written
    // back (flushWriteBacks); one it re-notes stays deferred.
    const [flushed, renoted] = [deferTo(0), deferTo(64)];
    flushWriteBacks(flat, new Set([renoted.dataId]));
    expect([isWriteBackDeferred(flushed), isWriteBackDeferred(renoted)]).toEqual([false, true]);
    // Overwrite the flat buffer with its negation.
    const minus = newTensorInfo(
      b,
      [192],
      flatValues.map((v) => -v),
    );
    copyElements(b, bufferOf(b, minus), 0, bufferOf(b, flat), 0, 192);
    b.disposeData(minus.dataId);
    expect(Array.from((await flushed.data()) as Float32Array)).toEqual(
      Array.from(flatValues.slice(0, 64)),
    );
    expect(Array.from((await renoted.data()) as Float32Array)).toEqual(
      Array.from(flatValues.slice(64, 128)).map((v) => -v),
    );
    tf.dispose([flushed, renoted]);
    b.disposeData(flat.dataId);
    // The same AdamW with deferral off: every parameter is copied back by the step itself.
    setWebgpuWriteBackDeferral(false);
    try {
      const { tensors, metadata } = loadFixture("adamw.safetensors");
      const { vars, opt } = fixtureOptimiser(tensors, (metadata.lr as number[])[0], 0);
      opt.step(Object.fromEntries(NAMES.map((n) => [n, tensors[`grad.step1.${n}`]])));
      expect(vars.map((v) => isWriteBackDeferred(v))).toEqual([false, false, false]);
      opt.dispose();
      tf.dispose([...vars, ...Object.values(tensors)]);
    } finally {
      setWebgpuWriteBackDeferral(true);
    }
  });

  it("the taped block stack writes its weights' gradients into the AdamW's gradient arena: the same gradients and updates as without it", {
    timeout: 240_000,
  }, async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const run = async (deferred: boolean) => {
      setWebgpuWriteBackDeferral(deferred);
      const blocks = [asVariables(weights(10)), asVariables(weights(20))];
      const vars = blocks.flatMap((w) => flat(w).map(([, t]) => t as tf.Variable));
      const opt = new AdamW(
        vars.map((v, i) => [`p${i}`, v] as [string, tf.Variable]),
        { lr: 1e-2 },
      );
      const x = fill([B, N, D], 1) as tf.Tensor3D;
      const grads: Float32Array[][] = [];
      const inArena: boolean[][] = [];
      for (let step = 0; step < 3; step++) {
        const { value, grads: byVar } = tf.variableGrads(
          () => tf.sum(tf.square(transformerStack(x, blocks, { numHeads: HEADS }))) as tf.Scalar,
          vars,
        );
        const g = vars.map((v) => byVar[v.name]);
        inArena.push(g.map((t) => isWriteBackDeferred(t)));
        opt.step(Object.fromEntries(g.map((t, i) => [`p${i}`, t])));
        // Read after the step: the arena's values, written back now.
        grads.push(await Promise.all(g.map((t) => t.data() as Promise<Float32Array>)));
        tf.dispose([value, ...g]);
      }
      const params = await Promise.all(vars.map((v) => v.data() as Promise<Float32Array>));
      opt.dispose();
      tf.dispose([...vars, x]);
      return { grads, params, inArena };
    };
    const eager = await run(false);
    const deferred = await run(true);
    setWebgpuWriteBackDeferral(true);
    expect(eager.inArena.flat().some(Boolean)).toBe(false);
    // Step 0 has nothing deferred yet; then the aligned weights' gradients are in the arena.
    expect(deferred.inArena[0].some(Boolean)).toBe(false);
    expect(deferred.inArena[1].filter(Boolean).length).toBeGreaterThanOrEqual(8);
    expect(deferred.inArena[2]).toEqual(deferred.inArena[1]);
    for (let step = 0; step < 3; step++)
      deferred.grads[step].forEach((g, i) => {
        expect(Array.from(g), `step ${step} gradient ${i}`).toEqual(
          Array.from(eager.grads[step][i]),
        );
      });
    deferred.params.forEach((p, i) => {
      expect(Array.from(p), `parameter ${i}`).toEqual(Array.from(eager.params[i]));
    });
  });
});
