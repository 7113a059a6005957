import * as tf from "@tensorflow/tfjs";
import { expectClose } from "@sit/testing";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import { portableGelu } from "../gelu";
import { portableLinear } from "../linear";
import {
  bufferOf,
  checkWebgpuShaders,
  dispatchAll,
  settleShaderChecks,
  webgpuInternals,
} from "./flat-buffers";
import { PLAIN_GEMM, gemmTileFor, setWebgpuGemmTile, webgpuGemm } from "./gemm";
import { webgpuFusedLinear } from "./gemm-linear";
import { countLaunches, fill, onCpu, useWebgpu } from "./testing";

afterAll(async () => {
  await tf.setBackend("cpu");
});

// Each tile forced, on shapes that cross its edges in every dimension (64 × 64 × 16: [70, 37, 67];
// 128 × 128 × 8: [130, 37, 200]), and the 128 tile on a product smaller than one tile with K < BK.
// The fused linear's x is [2, M / 2, K].
describe.each([
  { tile: "64", shape: [70, 37, 67] },
  { tile: "128", shape: [130, 37, 200] },
  { tile: "128", shape: [20, 5, 9] },
] as const)("webgpu GEMM kernels, tile $tile, [M, K, N] = $shape", ({ tile, shape }) => {
  const [M, K, N] = shape;
  const rows = M / 2;
  beforeEach(() => setWebgpuGemmTile(tile));
  afterEach(() => setWebgpuGemmTile("auto"));

  it("match tfjs's matMul for every transpose pair, with GELU prologue, bias and residual", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const make = (ta: boolean, tb: boolean) => [
      fill(ta ? [K, M] : [M, K], 1),
      fill(tb ? [N, K] : [K, N], 2),
      fill([N], 3),
      fill([M, N], 4),
    ];
    // Each transpose pair once with and once without the GELU prologue and epilogue (16 shaders
    // to compile on a CPU Vulkan driver: kept small).
    for (const [ta, tb, gelu] of [
      [false, false, true],
      [true, false, false],
      [false, true, true],
      [true, true, false],
    ]) {
      {
        const reference = await onCpu(() => {
          const [a, b, bias, r] = make(ta, tb);
          const pre = gelu ? portableGelu(a) : a;
          return [tf.add(tf.add(tf.matMul(pre, b, ta, tb), bias), r), tf.matMul(a, b, ta, tb)];
        });
        const [a, b, bias, r] = make(ta, tb) as tf.Tensor2D[];
        const got = [
          webgpuGemm(a, b, {
            transposeA: ta,
            transposeB: tb,
            geluA: gelu,
            bias: bias as unknown as tf.Tensor1D,
            residual: r,
          }),
          webgpuGemm(a, b, { transposeA: ta, transposeB: tb }),
        ];
        expectClose(
          await got[0].data(),
          reference[0],
          1e-5,
          `fused ta=${ta} tb=${tb} gelu=${gelu}`,
        );
        expectClose(await got[1].data(), reference[1], 1e-5, `plain ta=${ta} tb=${tb}`);
        tf.dispose([a, b, bias, r, ...got]);
      }
    }
  }, 600_000);

  it("fused linear (GELU input, bias, residual; rank 3) matches the portable ops, forward and every gradient", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const make = () => [
      fill([2, rows, K], 5),
      fill([K, N], 6, 0.3),
      fill([N], 7),
      fill([2, rows, N], 8),
      fill([2, rows, N], 9),
      tf.tensor1d([0, 1.25]), // stochastic depth: the first sample's branch dropped
    ];
    // Every flag on and off, the MLP's two layers (bias; GELU input + bias + residual, with and
    // without drop-path factors) included.
    for (const [geluInput, withBias, withResidual, withScale] of [
      [false, false, false, false],
      [false, true, false, false],
      [false, true, true, true],
      [true, true, true, false],
      [true, true, true, true],
      [true, false, false, true],
    ]) {
      {
        const label = `gelu=${geluInput} bias=${withBias} residual=${withResidual} scale=${withScale}`;
        const portable = (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor, r: tf.Tensor) => {
          const pre = geluInput ? portableGelu(x) : x;
          const y = portableLinear(
            tf.reshape(pre, [-1, K]) as tf.Tensor2D,
            w as tf.Tensor2D,
            withBias ? (b as tf.Tensor1D) : null,
          ).reshape([2, rows, N]);
          const ys = withScale ? tf.mul(y, tf.reshape(scale, [2, 1, 1])) : y;
          return withResidual ? tf.add(ys, r) : ys;
        };
        const fused = (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor, r: tf.Tensor) =>
          webgpuFusedLinear(x, w, withBias ? b : null, {
            geluInput,
            residual: withResidual ? r : null,
            rowScale: withScale ? scale : null,
          });
        const names = [
          "dx",
          "dw",
          ...(withBias ? ["dbias"] : []),
          ...(withResidual ? ["dresidual"] : []),
        ];
        let scale: tf.Tensor;
        const run = (f: typeof portable, [x, w, b, r, dy, sc]: tf.Tensor[]) => {
          scale = sc;
          const used = [x, w, ...(withBias ? [b] : []), ...(withResidual ? [r] : [])];
          const g = (...t: tf.Tensor[]) =>
            tf.sum(
              tf.mul(f(t[0], t[1], withBias ? t[2] : b, withResidual ? t[t.length - 1] : r), dy),
            );
          return [f(x, w, b, r), ...tf.grads(g)(used)];
        };
        const reference = await onCpu(() => run(portable, make()));
        const inputs = make();
        const got = run(fused, inputs);
        expectClose(await got[0].data(), reference[0], 1e-5, `${label} y`);
        for (const [i, name] of names.entries())
          expectClose(await got[i + 1].data(), reference[i + 1], 1e-4, `${label} ${name}`);
        tf.dispose([...inputs, ...got]);
      }
    }
  }, 600_000);
});

describe("webgpu GEMM kernels", () => {
  it("picks the tile per variant and shape (128: f32, M and N ≥ 128, ≥ 8 tiles of 128) and rejects a bad choice", () => {
    // ViT-Tiny/4 at batch 256: M = 16640 tokens.
    const bias = { ...PLAIN_GEMM, bias: true };
    expect(gemmTileFor(bias, 16640, 576, 192)).toBe(128); // qkv
    expect(gemmTileFor({ ...PLAIN_GEMM, transB: true }, 16640, 192, 768)).toBe(128); // fc1's dx
    expect(gemmTileFor({ ...bias, geluA: true }, 16640, 192, 768)).toBe(128); // fc2 (GELU input)
    expect(gemmTileFor({ ...bias, half: [] }, 16640, 576, 192)).toBe(64); // f16
    expect(gemmTileFor(bias, 16384, 192, 48)).toBe(128); // the patch embedding: K 48
    expect(gemmTileFor(bias, 16640, 127, 192)).toBe(64); // N below one tile
    const dW = { ...PLAIN_GEMM, transA: true, colSum: true };
    expect(gemmTileFor(dW, 192, 576, 16640)).toBe(128); // qkv's dW: 10 tiles of 128
    expect(gemmTileFor(dW, 192, 192, 16640)).toBe(64); // proj's dW: 4 tiles of 128
    expect(gemmTileFor(PLAIN_GEMM, 100, 100_000, 192)).toBe(64); // M below one tile
    setWebgpuGemmTile("128");
    expect(gemmTileFor({ ...bias, half: [] }, 10, 10, 10)).toBe(128);
    setWebgpuGemmTile("64");
    expect(gemmTileFor(bias, 16640, 576, 192)).toBe(64);
    setWebgpuGemmTile("auto");
    expect(() => setWebgpuGemmTile("256" as never)).toThrow(
      /setWebgpuGemmTile choice: expected "auto", "64" or "128", got "256"/,
    );
  });

  it("runs a linear in one dispatch forward and two backward (dx; dW with db), leaking nothing", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const [x, w, b, r, dy] = [
      fill([130, 192], 1),
      fill([192, 768], 2),
      fill([768], 3),
      fill([130, 768], 4),
      fill([130, 768], 5),
    ];
    const forward = await countLaunches(() =>
      webgpuFusedLinear(x, w, b, { residual: r, geluInput: true }),
    );
    expect(forward).toEqual({ dispatches: 1, kernels: ["SitLinear"] });
    const f = tf.grads((xi: tf.Tensor, wi: tf.Tensor, bi: tf.Tensor, ri: tf.Tensor) =>
      webgpuFusedLinear(xi, wi, bi, { residual: ri, geluInput: true }),
    );
    const both = await countLaunches(() => f([x, w, b, r], dy));
    // (tf.grads itself adds Identity kernels: no dispatch.)
    expect(both.kernels.filter((k) => k !== "Identity")).toEqual(["SitLinear", "SitLinearGrad"]);
    expect(both.dispatches).toBe(1 + 2);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) tf.dispose(f([x, w, b, r], dy));
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, w, b, r, dy]);
  });

  it("rejects bad input with an error naming the argument, value and expectation", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const [x, w] = [fill([4, 5], 1), fill([5, 3], 2)];
    expect(() => webgpuFusedLinear(x, fill([4, 3], 3), null)).toThrow(
      /fusedLinear x: .*last axis is 4/,
    );
    expect(() => webgpuFusedLinear(x, w, fill([4], 3))).toThrow(
      /fusedLinear bias: expected .*\[3\]/,
    );
    expect(() => webgpuFusedLinear(x, w, null, { residual: fill([4, 4], 3) })).toThrow(
      /fusedLinear residual: expected a tensor of shape \[4,3\]/,
    );
    expect(() => webgpuFusedLinear(x, w, null, { rowScale: fill([5], 3) })).toThrow(
      /fusedLinear rowScale: expected a tensor of shape \[4\]/,
    );
    expect(() => webgpuGemm(x as tf.Tensor2D, x as tf.Tensor2D)).toThrow(
      /gemm b: expected 5 along its first axis/,
    );
    tf.dispose([x, w]);
  });

  it("fails loudly on a WGSL compile error: the check rejects and the next kernel call throws", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const b = webgpuInternals(tf.backend());
    const broken = (key: string) =>
      dispatchAll(b, [
        {
          key,
          code: "@compute @workgroup_size(1) fn main() { let x : f32 = undefinedThing; }",
          buffers: [],
          uniforms: [{ type: "int32", data: [0] }],
          workgroups: 1,
        },
      ]);
    // WebGPU reports compile errors asynchronously: the first call cannot know yet.
    broken("SitBrokenForTest");
    await expect(checkWebgpuShaders()).rejects.toThrow(
      /WGSL shader "SitBrokenForTest" failed to compile: .*undefinedThing/s,
    );
    // Every later use of that shader throws from the call.
    expect(() => broken("SitBrokenForTest")).toThrow(/SitBrokenForTest" failed to compile/);
    // Reported once to the next kernel call of any shader, even a healthy one.
    broken("SitBrokenForTest2");
    await settleShaderChecks();
    const [x, w] = [fill([4, 5], 1), fill([5, 3], 2)];
    expect(() => webgpuFusedLinear(x, w, null)).toThrow(/SitBrokenForTest2" failed to compile/);
    const y = webgpuFusedLinear(x, w, null);
    expect(y.shape).toEqual([4, 3]);
    tf.dispose([x, w, y]);
  });

  it("fails loudly when a dispatch binds a buffer its shader does not use (no silent zeros)", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const b = webgpuInternals(tf.backend());
    const t = fill([4], 1);
    // Binding 0 is never read, so the layout WebGPU derives from the shader lacks it.
    const unused = (key: string) =>
      dispatchAll(b, [
        {
          key,
          code: "struct U { n: i32 }; @group(0) @binding(1) var<uniform> u: U; @compute @workgroup_size(1) fn main() { let k = u.n; }",
          buffers: [bufferOf(b, t)],
          uniforms: [{ type: "int32", data: [0] }],
          workgroups: 1,
        },
      ]);
    unused("SitUnusedBindingForTest");
    await expect(checkWebgpuShaders()).rejects.toThrow(
      /WGSL shader "SitUnusedBindingForTest": its bindings do not match/,
    );
    expect(() => unused("SitUnusedBindingForTest")).toThrow(
      /SitUnusedBindingForTest": its bindings/,
    );
    tf.dispose(t);
  });
});
