import { ShapeError } from "@sit/core";
import * as tf from "@tensorflow/tfjs";
import { afterAll, describe, expect, it } from "vitest";
import { type View, checkBindingSizes, encode, viewOf } from "./encode";
import {
  type WebGpuInternals,
  checkWebgpuShaders,
  newTensorInfo,
  webgpuInternals,
} from "./flat-buffers";
import { useWebgpu } from "./testing";

// out[i] = x[i] + 1 over n elements.
const ADD_ONE = /* wgsl */ `
struct U { n: i32 };
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> u: U;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = i32(gid.x);
  if (i < u.n) { out[i] = x[i] + 1.0; }
}`;

/** A backend whose device allows storage bindings of `limit` bytes (all checkBindingSizes reads). */
function withLimit(limit: number): WebGpuInternals {
  return { device: { limits: { maxStorageBufferBindingSize: limit } } } as WebGpuInternals;
}

const view = (size: number): View => ({ buffer: { size: size * 4 }, offset: 0, size });

describe("storage binding sizes (checkBindingSizes)", () => {
  afterAll(async () => {
    await tf.setBackend("cpu");
  });

  it("accepts views up to the adapter's maxStorageBufferBindingSize and names the shader, binding and sizes above it", () => {
    const b = withLimit(1024);
    expect(() => checkBindingSizes(b, "SitTest", [view(16), view(256)])).not.toThrow();
    let error: unknown;
    try {
      checkBindingSizes(b, "SitTest", [view(16), view(257)]);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ShapeError);
    const message = (error as Error).message;
    for (const part of ['"SitTest"', "257 floats", "1028 bytes", "binding 1", "1024 bytes"])
      expect(message).toContain(part);
  });

  it("on webgpu, encode throws before making a bind group larger than the device allows, and a fitting dispatch still runs", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const b = webgpuInternals(tf.backend());
    const limit = b.device.limits.maxStorageBufferBindingSize;
    const n = 100;
    const x = tf.range(0, n);
    const out = newTensorInfo(b, [n]);
    // A view claiming more floats than one binding may hold (its buffer is small: the check
    // must come first, or WebGPU would reject the bind group only asynchronously).
    const tooLarge = { ...viewOf(b, out), size: Math.floor(limit / 4) + 64 };
    expect(() =>
      encode(b, "testAddOne", () => ADD_ONE, [viewOf(b, x), tooLarge], [{ i: n }], [2, 1, 1]),
    ).toThrow(ShapeError);
    encode(b, "testAddOne", () => ADD_ONE, [viewOf(b, x), viewOf(b, out)], [{ i: n }], [2, 1, 1]);
    const result = tf.engine().makeTensorFromTensorInfo(out);
    expect(Array.from(await result.data())).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    // No invalid bind group was made: no validation error is pending.
    await expect(checkWebgpuShaders()).resolves.toBeUndefined();
    tf.dispose([x, result]);
  });
});
