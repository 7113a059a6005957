import * as tf from "@tensorflow/tfjs";
import { afterAll, describe, expect, it } from "vitest";
import { encode, viewOf } from "./encode";
import { callTable, encodePlanned } from "./encode-plan";
import {
  dispatchAll,
  newTensorInfo,
  scratchBuffer,
  webgpuInternals,
  bufferOf,
} from "./flat-buffers";
import { expectClose } from "@sit/testing";
import { portableGelu } from "../gelu";
import { portableLinear } from "../linear";
import { webgpuFusedLinear } from "./gemm-linear";
import { countBindGroups, fill, onCpu, useWebgpu } from "./testing";

// out = a·x + y over n elements: y from a second input, or from a persistent scratch buffer.
const AXPY = /* wgsl */ `
struct U { n: i32, a: f32 };
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> u: U;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = i32(gid.x);
  if (i < u.n) { out[i] = u.a * x[i] + y[i]; }
}`;

type YSource = "input" | "scratch" | "temporary" | "outside encode";

/** A kernel call: out = 2·x + y, encoded through a plan; counts the calls that ran the body. */
function axpy(x: tf.Tensor, y: tf.Tensor, source: YSource, runs: { body: number }): tf.Tensor {
  const b = webgpuInternals(tf.backend());
  const n = x.size;
  const out = newTensorInfo(b, [n]);
  const { table, names } = callTable(b, { x, y }, [out]);
  encodePlanned(b, `test-axpy|${source}|${names}|${n}`, table, () => {
    runs.body++;
    let yView = viewOf(b, y);
    let temporary: tf.TensorInfo | null = null;
    if (source === "scratch" || source === "temporary") {
      // Copy y into the other buffer first (0·x + y), then read it from there.
      if (source === "temporary") temporary = newTensorInfo(b, [n]);
      const other = temporary ?? scratchBuffer(b, "test-axpy", n);
      encode(
        b,
        "testAxpy",
        () => AXPY,
        [viewOf(b, x), yView, viewOf(b, other, 0, n)],
        [{ i: n }, { f: 0 }],
        [Math.ceil(n / 64), 1, 1],
      );
      yView = viewOf(b, other, 0, n);
    }
    if (source === "outside encode")
      dispatchAll(b, [
        {
          key: "testAxpyDirect",
          code: AXPY,
          buffers: [bufferOf(b, x), bufferOf(b, y), bufferOf(b, out)],
          uniforms: [
            { type: "int32", data: [n] },
            { type: "float32", data: [2] },
          ],
          workgroups: Math.ceil(n / 64),
        },
      ]);
    else
      encode(
        b,
        "testAxpy",
        () => AXPY,
        [viewOf(b, x), yView, viewOf(b, out)],
        [{ i: n }, { f: 2 }],
        [Math.ceil(n / 64), 1, 1],
      );
    if (temporary) b.disposeData(temporary.dataId);
  });
  return tf.engine().makeTensorFromTensorInfo(out);
}

describe("recorded dispatch plans (encodePlanned)", () => {
  afterAll(async () => {
    await tf.setBackend("cpu");
  });

  it("replays a call's dispatches over the next calls' buffers; re-runs the body where a replay could bind a freed or unseen buffer", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const n = 100;
    const cases: [YSource, number][] = [
      ["input", 1],
      ["scratch", 1],
      ["temporary", 3],
      ["outside encode", 3],
    ];
    for (const [source, bodies] of cases) {
      const runs = { body: 0 };
      for (let call = 0; call < 3; call++) {
        // Fresh tensors each call: new buffers (or the pool's), as a training step's.
        const x = tf.range(0, n).add(call);
        const y = tf.fill([n], 10 * (call + 1));
        const out = axpy(x, y, source, runs);
        const expected = Array.from({ length: n }, (_, i) => 2 * (i + call) + 10 * (call + 1));
        expect(Array.from(await out.data()), `${source}, call ${call}`).toEqual(expected);
        tf.dispose([x, y, out]);
      }
      expect(runs.body, source).toBe(bodies);
    }
  });

  it("binds each replay's own buffers where they differ from an earlier call's on the same inputs: inputs swapped, outputs kept alive", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const n = 70;
    const runs = { body: 0 };
    const a = tf.range(0, n);
    const c = tf.fill([n], 5);
    const kept: tf.Tensor[] = [];
    // (x, y) = (a, c), (c, a), (a, c), (c, a) again, then fresh tensors, while the earlier outputs
    // stay alive: each replay's inputs match an earlier call's, its output buffer never does.
    const calls: [tf.Tensor, tf.Tensor][] = [
      [a, c],
      [c, a],
      [a, c],
      [c, a],
      [tf.add(a, 1), tf.add(c, 1)],
    ];
    for (const [i, [x, y]] of calls.entries()) {
      const xs = await x.data();
      const ys = await y.data();
      const out = axpy(x, y, "input", runs);
      kept.push(out);
      const expected = Array.from(xs, (v, j) => 2 * v + ys[j]);
      expect(Array.from(await out.data()), `call ${i}`).toEqual(expected);
    }
    expect(runs.body).toBe(1);
    tf.dispose([a, c, ...kept, ...calls[4]]);
  });

  it("replays a linear layer's forward and gradient (SitLinear, SitLinearGrad) over the next calls' tensors", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const [rows, K, N] = [9, 24, 40];
    const f = (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor, r: tf.Tensor, fused: boolean) =>
      fused
        ? webgpuFusedLinear(x, w, b, { geluInput: true, residual: r, rowScale: null })
        : tf.add(
            portableLinear(
              tf.reshape(portableGelu(x), [-1, K]) as tf.Tensor2D,
              w as tf.Tensor2D,
              b as tf.Tensor1D,
            ).reshape([2, rows, N]),
            r,
          );
    const run = (inputs: tf.Tensor[], fused: boolean) => {
      const [x, w, b, r, dy] = inputs;
      const g = (...t: tf.Tensor[]) => tf.sum(tf.mul(f(t[0], t[1], t[2], t[3], fused), dy));
      return [f(x, w, b, r, fused), ...tf.grads(g)([x, w, b, r])];
    };
    const make = (call: number) => [
      fill([2, rows, K], 10 * call + 1),
      fill([K, N], 10 * call + 2, 0.3),
      fill([N], 10 * call + 3),
      fill([2, rows, N], 10 * call + 4),
      fill([2, rows, N], 10 * call + 5),
    ];
    const held: tf.Tensor[] = [];
    for (let call = 0; call < 3; call++) {
      const reference = await onCpu(() => run(make(call), false));
      const inputs = make(call);
      const got = run(inputs, true);
      for (const [i, name] of ["y", "dx", "dw", "db", "dresidual"].entries())
        expectClose(
          await got[i].data(),
          reference[i],
          i === 0 ? 1e-5 : 1e-4,
          `call ${call} ${name}`,
        );
      // The first call's tensors stay alive into the second: its buffers cannot come back.
      if (call === 0) held.push(...inputs, ...got);
      else tf.dispose([...inputs, ...got]);
    }
    tf.dispose(held);
  });

  it("replays a call on the same buffers with the bind groups of the last, over the buffers' new contents", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const b = webgpuInternals(tf.backend());
    const n = 90;
    const runs = { body: 0 };
    const x = tf.range(0, n);
    const y = tf.fill([n], 3);
    // The first call records the plan, the second replays it and keeps its bind groups.
    let firstBuffer: unknown;
    for (let call = 0; call < 2; call++) {
      const out = axpy(x, y, "input", runs);
      await out.data();
      firstBuffer = bufferOf(b, out);
      out.dispose();
      // tfjs returns a disposed tensor's buffer to its pool at the next submit.
      b.ensureCommandEncoderReady();
      b.submitQueue();
    }
    // As AdamW updates a weight: new values in the same buffer.
    const next = Float32Array.from({ length: n }, (_, i) => 100 - i);
    b.queue.writeBuffer(bufferOf(b, x), 0, next);
    const [made, second] = await countBindGroups(() => axpy(x, y, "input", runs));
    // The pool handed the freed output buffer back: the same table as the first call's.
    expect(bufferOf(b, second)).toBe(firstBuffer);
    expect(made).toBe(0);
    expect(Array.from(await second.data())).toEqual(Array.from(next, (v) => 2 * v + 3));
    second.dispose();
    tf.dispose([x, y]);
  });
});
