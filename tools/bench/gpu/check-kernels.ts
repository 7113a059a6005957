// Correctness check of every backend kernel registered in @sit/kernels' override registry for the
// active backend: forward output and gradients (through tf.grads with a fixed random cotangent)
// against `portableKernels` on the same backend, on random inputs at ViT-Tiny/4 (B 8, N 65,
// D 192, 3 heads, 32 px) and ViT-S/16 (B 8, N 197, D 384, 6 heads, 224 px) sizes. Whatever is
// registered when @sit/kernels' index is imported is checked (registration is a side effect of
// that import). Prints one JSON object: the adapter, every (kernel, size) pair with max relative
// errors (max-norm: max|a − b| / max|b|) and pass/fail at --tol (default 1e-4). On webgpu also the
// fused transformer block against the portable one at both sizes, with and without drop path
// (check-block.ts). Exit code 0 even on failures (the JSON says so); 2 if the backend cannot start.
//
//   npx tsx tools/bench/gpu/check-kernels.ts [--backend webgpu] [--allow-software-adapter]
//     [--tol 1e-4] [--batch 8]
import * as tf from "@tensorflow/tfjs";
import type { BackendName } from "../../../packages/core/src/index";
import { initBackend } from "../../../packages/core/src/node";
import {
  type KernelName,
  type KernelSignatures,
  listKernelOverrides,
  portableKernels,
} from "../../../packages/kernels/src/index";
import { findOverride } from "../../../packages/kernels/src/registry";
import { checkWebgpuShaders } from "../../../packages/kernels/src/webgpu/flat-buffers";
import { maxRelativeError } from "../../../packages/testing/src/measure";
import { checkBlock } from "./check-block";

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}
const backendName = option("backend", "webgpu") as BackendName;
const TOL = Number(option("tol", "1e-4"));
const B = Number(option("batch", "8"));

const SIZES = [
  { name: "vit-tiny/4", n: 65, d: 192, heads: 3, img: 32, patch: 4 },
  { name: "vit-s/16", n: 197, d: 384, heads: 6, img: 224, patch: 16 },
] as const;
type Size = (typeof SIZES)[number];

let seed = 1;
const rand = (shape: number[], scale = 1) =>
  tf.tidy(() => tf.randomNormal(shape, 0, scale, "float32", seed++));

/** A case: the kernel's inputs (differentiable ones first) and a call of either implementation. */
interface Case {
  inputs: tf.Tensor[];
  call: (impl: KernelSignatures, xs: tf.Tensor[]) => tf.Tensor;
}

function makeCase(name: KernelName, s: Size): Case {
  const M = B * s.n;
  const attn = { numHeads: s.heads, scale: (s.d / s.heads) ** -0.5, returnProbabilities: false };
  switch (name) {
    case "linear":
      return {
        inputs: [rand([M, s.d]), rand([s.d, 3 * s.d], 0.05), rand([3 * s.d], 0.1)],
        call: (k, [x, w, b]) => k.linear(x as tf.Tensor2D, w as tf.Tensor2D, b as tf.Tensor1D),
      };
    case "layerNorm":
      return {
        inputs: [rand([M, s.d], 2), rand([s.d]), rand([s.d])],
        call: (k, [x, g, b]) =>
          k.layerNorm(x as tf.Tensor2D, g as tf.Tensor1D, b as tf.Tensor1D, 1e-6),
      };
    case "gelu":
      return { inputs: [rand([M, 4 * s.d], 2)], call: (k, [x]) => k.gelu(x) };
    case "multiHeadAttention":
      return {
        inputs: [rand([B, s.n, s.d]), rand([B, s.n, s.d]), rand([B, s.n, s.d])],
        call: (k, [q, kk, v]) =>
          k.multiHeadAttention(q as tf.Tensor3D, kk as tf.Tensor3D, v as tf.Tensor3D, attn).output,
      };
    case "packedSelfAttention":
      return {
        inputs: [rand([B, s.n, 3 * s.d])],
        call: (k, [qkv]) => k.packedSelfAttention(qkv as tf.Tensor3D, attn).output,
      };
    case "patchify":
      return {
        inputs: [rand([B, s.img, s.img, 3])],
        call: (k, [x]) => k.patchify(x as tf.Tensor4D, s.patch),
      };
    case "unpatchify": {
      const g = s.img / s.patch;
      return {
        inputs: [rand([B, g * g, s.patch * s.patch * 3])],
        call: (k, [x]) => k.unpatchify(x as tf.Tensor3D, s.patch, g, g),
      };
    }
    default:
      throw new Error(`no test inputs for kernel "${name satisfies never}"`);
  }
}

/** max|a − b| / max|b| (the fixtures' measure: float32 sums in another order differ by ulps of the scale). */
async function relError(a: tf.Tensor, b: tf.Tensor): Promise<number> {
  if (a.shape.join() !== b.shape.join()) return Number.POSITIVE_INFINITY;
  // Async reads: tfjs-backend-webgpu's dataSync needs OffscreenCanvas, which Node lacks.
  const [x, y] = await Promise.all([a.data(), b.data()]);
  return maxRelativeError(x, y);
}

async function check(name: KernelName, backend: string, s: Size): Promise<Record<string, unknown>> {
  const override = findOverride(name, backend);
  if (!override) return { kernel: name, size: s.name, error: "override vanished" };
  const impl = { ...portableKernels, [name]: override } as KernelSignatures;
  const c = makeCase(name, s);
  try {
    const dy = tf.tidy(() => rand(c.call(portableKernels, c.inputs).shape));
    const run = async (k: KernelSignatures) => {
      const t0 = performance.now();
      const r = tf.tidy(() => {
        const out = c.call(k, c.inputs);
        const grads = tf.grads((...xs: tf.Tensor[]) => tf.sum(tf.mul(c.call(k, xs), dy)))(c.inputs);
        return { out, grads };
      });
      await Promise.all([r.out, ...r.grads].map((t) => t.data()));
      return { ...r, ms: performance.now() - t0 };
    };
    const ref = await run(portableKernels);
    const got = await run(impl);
    const forward = await relError(got.out, ref.out);
    const gradients: number[] = [];
    for (let i = 0; i < got.grads.length; i++)
      gradients.push(await relError(got.grads[i], ref.grads[i]));
    const worst = Math.max(forward, ...gradients);
    tf.dispose([dy, ref.out, got.out, ...ref.grads, ...got.grads]);
    return {
      kernel: name,
      size: s.name,
      forward_rel: forward,
      grad_rel: gradients,
      pass: worst <= TOL,
      ms_fwd_bwd: { override: Math.round(got.ms), portable: Math.round(ref.ms) },
    };
  } catch (err) {
    return {
      kernel: name,
      size: s.name,
      pass: false,
      error: (err as Error).message.split("\n")[0],
    };
  } finally {
    tf.dispose(c.inputs);
  }
}

let info: Awaited<ReturnType<typeof initBackend>>;
try {
  info = await initBackend(backendName, {
    log: false,
    allowSoftwareAdapter: process.argv.includes("--allow-software-adapter"),
  });
} catch (err) {
  console.log(JSON.stringify({ check: "kernels", backend: backendName, error: String(err) }));
  process.exit(2);
}
const active = tf.getBackend();
const registered = listKernelOverrides();
const mine = registered.filter((r) => r.backend === active);
const results: Record<string, unknown>[] = [];
for (const { name } of mine)
  for (const s of SIZES) {
    const r = await check(name, active, s);
    console.error(`[check-kernels] ${JSON.stringify(r)}`);
    results.push(r);
  }
if (active === "webgpu")
  for (const s of SIZES)
    for (const drop of [false, true]) {
      const r = await checkBlock(s, B, drop, TOL);
      console.error(`[check-kernels] ${JSON.stringify(r)}`);
      results.push(r);
    }
// WGSL compile errors of the kernels that @sit/kernels encodes itself surface asynchronously.
let shaderError: string | undefined;
if (active === "webgpu")
  shaderError = await checkWebgpuShaders().then(
    () => undefined,
    (err: Error) => err.message,
  );
process.stdout.write(
  `${JSON.stringify(
    {
      check: "kernels",
      backend: active,
      ...(shaderError ? { shader_error: shaderError } : {}),
      adapter: info.adapter ?? null,
      tolerance_rel: TOL,
      registered: registered.map((r) => `${r.name}@${r.backend}`),
      checked: mine.length,
      note:
        mine.length === 0 ? `no overrides registered for ${active}: nothing to compare` : undefined,
      all_pass: !shaderError && results.every((r) => r.pass === true),
      results,
    },
    null,
    2,
  )}\n`,
  // Dawn keeps the process alive after the last command: exit once the JSON is written.
  () => process.exit(0),
);
