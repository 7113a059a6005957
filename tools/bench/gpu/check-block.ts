// The fused transformer block (one tfjs kernel forward, one backward; @sit/kernels' transformerBlock
// on webgpu) against the portable block on the same backend, at the bench models' sizes: output
// and the gradients of x and of every weight of Σ y·R, with and without drop path. What
// block.test.ts checks on lavapipe at small sizes, here at ViT-Tiny/4 and ViT-S/16 sizes on the
// real adapter (their GEMM tiles, workgroup counts and attention lengths). Used by check-kernels.ts.
import * as tf from "@tensorflow/tfjs";
import {
  type TransformerBlockWeights,
  namedBlockWeights,
  portableTransformerBlock,
  transformerBlock,
} from "../../../packages/kernels/src/transformer-block";
import { maxRelativeError } from "../../../packages/testing/src/measure";

export interface BlockSize {
  name: string;
  n: number;
  d: number;
  heads: number;
}

type Block = typeof transformerBlock;

function blockWeights(d: number, seed: number): TransformerBlockWeights {
  const r = (shape: number[], s: number) => tf.randomNormal(shape, 0, s, "float32", seed++);
  const lin = (i: number, o: number) => ({ weight: r([i, o], i ** -0.5), bias: r([o], 0.1) });
  const norm = () => ({ weight: tf.add(1, r([d], 0.2)), bias: r([d], 0.2), eps: 1e-6 });
  return {
    norm1: norm(),
    qkv: lin(d, 3 * d),
    proj: lin(d, d),
    norm2: norm(),
    fc1: lin(d, 4 * d),
    fc2: lin(4 * d, d),
  };
}

const params = namedBlockWeights;

async function outputs(
  block: Block,
  w: TransformerBlockWeights,
  x: tf.Tensor3D,
  r: tf.Tensor,
  heads: number,
  scales: [tf.Tensor, tf.Tensor] | null,
): Promise<{ data: Float32Array[]; ms: number }> {
  const names = params(w);
  const t0 = performance.now();
  const out = tf.tidy(() => {
    const f = (xi: tf.Tensor, ...ps: tf.Tensor[]) => {
      let k = 0;
      const rebuilt = Object.fromEntries(
        Object.entries(w).map(([name, layer]) => {
          const l = layer as { eps?: number };
          const weight = ps[k++];
          const bias = ps[k++];
          return [name, l.eps === undefined ? { weight, bias } : { weight, bias, eps: l.eps }];
        }),
      ) as unknown as TransformerBlockWeights;
      return block(xi as tf.Tensor3D, rebuilt, { numHeads: heads, dropScales: scales }).output;
    };
    const ps = names.map(([, t]) => t);
    const y = f(x, ...ps);
    const grads = tf.grads((xi: tf.Tensor, ...p: tf.Tensor[]) => tf.sum(tf.mul(f(xi, ...p), r)))([
      x,
      ...ps,
    ]);
    return [y, ...grads];
  });
  const data = (await Promise.all(out.map((t) => t.data()))) as Float32Array[];
  const ms = performance.now() - t0;
  tf.dispose(out);
  return { data, ms };
}

/** One (size, drop path) case: errors of the output and of every gradient, and pass at `tol`. */
export async function checkBlock(
  s: BlockSize,
  batch: number,
  drop: boolean,
  tol: number,
): Promise<Record<string, unknown>> {
  const w = blockWeights(s.d, 100);
  const x = tf.randomNormal([batch, s.n, s.d], 0, 1, "float32", 7) as tf.Tensor3D;
  const r = tf.randomNormal([batch, s.n, s.d], 0, 1, "float32", 8);
  // Half the samples dropped in each branch, the others scaled by 1/keep (keep = 0.5).
  const scales: [tf.Tensor, tf.Tensor] | null = drop
    ? [
        tf.tensor1d(Array.from({ length: batch }, (_, i) => (i % 2 ? 2 : 0))),
        tf.tensor1d(Array.from({ length: batch }, (_, i) => (i % 3 ? 2 : 0))),
      ]
    : null;
  const outputNames = ["output", "x", ...params(w).map(([n]) => n)];
  try {
    const ref = await outputs(portableTransformerBlock, w, x, r, s.heads, scales);
    let got = ref;
    // The portable block composes the same WGSL GEMM, LayerNorm and attention shaders, so equal
    // results are expected; the profile proves the fused kernels really ran.
    const profile = await tf.profile(async () => {
      got = await outputs(transformerBlock, w, x, r, s.heads, scales);
    });
    // SitBlock or SitBlockScaled (drop path) forward, and its gradient kernel.
    const ran = profile.kernelNames.filter((k) => k.startsWith("SitBlock"));
    const fused = ran.some((k) => !k.endsWith("Grad")) && ran.some((k) => k.endsWith("Grad"));
    const errors = Object.fromEntries(
      outputNames.map((n, i) => [n, maxRelativeError(got.data[i], ref.data[i])]),
    );
    const worst = Math.max(...Object.values(errors));
    return {
      kernel: "transformerBlock",
      size: s.name,
      drop_path: drop,
      // The output at tol / 10 (block.test.ts: 1e-5 forward, 1e-4 gradients).
      pass: fused && errors.output <= tol / 10 && worst <= tol,
      fused_kernels_ran: fused,
      forward_rel: errors.output,
      grad_rel: outputNames.slice(1).map((n) => errors[n]),
      worst_grad: outputNames.slice(1).reduce((a, n) => (errors[n] > errors[a] ? n : a), "x"),
      ms_fwd_bwd: { fused: Math.round(got.ms), portable: Math.round(ref.ms) },
    };
  } catch (err) {
    return {
      kernel: "transformerBlock",
      size: s.name,
      drop_path: drop,
      pass: false,
      error: (err as Error).message.split("\n")[0],
    };
  } finally {
    tf.dispose([x, r, ...(scales ?? []), ...params(w).map(([, t]) => t)]);
  }
}
