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
import { useWebgpu } from "./testing";

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
});
