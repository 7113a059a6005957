// The fused WebGPU kernels of @sit/kernels against the portable tfjs-op versions on the same
// backend, at ViT-Tiny/4 (32 px) sizes: LayerNorm [B·65, 192], GELU [B·65, 768] and packed
// attention [B, 65, 576] with 3 heads (and, with --model small, ViT-S/16 at 224 px: N 197, D 384,
// 6 heads). Forward + backward per op, median wall time over --iters (each ends with a read of one
// value, so the GPU work is inside the time), and GPU dispatches per forward + backward. Prints
// one JSON object.
//
//   npx tsx tools/bench/webgpu-kernels.ts [--batch 256] [--model tiny|small] [--iters 10]
//     [--allow-software-adapter]
import * as tf from "@tensorflow/tfjs";
import { Rng } from "../../packages/core/src/index";
import { initBackend } from "../../packages/core/src/node";
import {
  gelu,
  layerNorm,
  packedSelfAttention,
  setWebgpuKernels,
} from "../../packages/kernels/src/index";

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}
const small = option("model", "tiny") === "small";
const BATCH = Number(option("batch", small ? "64" : "256"));
const ITERS = Number(option("iters", "10"));
const [N, D, H] = small ? [197, 384, 6] : [65, 192, 3];

function randn(shape: number[], seed: number): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(Rng.seed(seed).fillNormal(new Float32Array(n)), shape);
}

async function main() {
  const info = await initBackend("webgpu", {
    allowSoftwareAdapter: process.argv.includes("--allow-software-adapter"),
    log: false,
  });
  const m = BATCH * N;
  const x = randn([m, D], 1);
  const g = randn([D], 2);
  const h = randn([m, 4 * D], 3);
  const qkv = randn([BATCH, N, 3 * D], 4);
  const ops: Record<string, { f: (t: tf.Tensor) => tf.Tensor; input: tf.Tensor }> = {
    layerNorm: { f: (t) => layerNorm(t, g, g), input: x },
    gelu: { f: (t) => gelu(t), input: h },
    attention: { f: (t) => packedSelfAttention(t, { numHeads: H }).output, input: qkv },
  };
  const backend = tf.backend() as unknown as { runWebGPUProgram: (...a: unknown[]) => unknown };
  const original = backend.runWebGPUProgram;
  const result: Record<string, unknown> = {};
  for (const [name, { f, input }] of Object.entries(ops)) {
    const row: Record<string, unknown> = {};
    for (const fused of [false, true]) {
      setWebgpuKernels(fused);
      const step = () => tf.tidy(() => tf.grad((t: tf.Tensor) => tf.sum(f(t)))(input));
      for (let i = 0; i < 2; i++)
        await step()
          .data()
          .then(() => undefined); // compile, warm up
      let dispatches = 0;
      backend.runWebGPUProgram = function (this: unknown, ...a: unknown[]) {
        dispatches++;
        return original.apply(this, a);
      };
      tf.dispose(step());
      backend.runWebGPUProgram = original;
      const times: number[] = [];
      for (let i = 0; i < ITERS; i++) {
        const t0 = performance.now();
        const r = step();
        await r.slice([0], [1]).data();
        times.push(performance.now() - t0);
        r.dispose();
      }
      times.sort((a, b) => a - b);
      row[fused ? "fused" : "portable"] = {
        ms_fwd_bwd: Math.round(times[times.length >> 1] * 100) / 100,
        gpu_dispatches: dispatches,
      };
    }
    result[name] = row;
  }
  setWebgpuKernels(true);
  console.log(
    JSON.stringify({ adapter: info.adapter, batch: BATCH, tokens: N, dim: D, heads: H, ...result }),
  );
}
// Exit when done: on webgpu, Dawn's device keeps Node's event loop alive after the last output.
main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
