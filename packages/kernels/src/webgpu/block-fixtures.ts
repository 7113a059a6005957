// Test fixtures of the fused transformer block's specs (block.test.ts, block-half.test.ts).
import * as tf from "@tensorflow/tfjs";
import {
  type TransformerBlockWeights,
  namedBlockWeights,
  type transformerBlock,
} from "../transformer-block";
import { fill } from "./testing";

// B·N = 51 rows and widths that cross the GEMM's 64 × 64 × 16 tiles; head dim 24.
export const [B, N, D, HEADS, HIDDEN] = [3, 17, 48, 2, 100];

/** The sizes of a fixture block (the defaults above, or wider ones for a case of its own). */
export interface BlockSizes {
  b: number;
  n: number;
  d: number;
  heads: number;
  hidden: number;
}
export const SIZES: BlockSizes = { b: B, n: N, d: D, heads: HEADS, hidden: HIDDEN };

export function weights(seed: number, qkvBias = true, sizes = SIZES): TransformerBlockWeights {
  const { d: D, hidden: HIDDEN } = sizes;
  const lin = (i: number, o: number, s: number, bias = true) => ({
    weight: fill([i, o], s, i ** -0.5),
    bias: bias ? fill([o], s + 1, 0.1) : null,
  });
  const norm = (s: number) => ({
    weight: tf.add(1, fill([D], s, 0.2)),
    bias: fill([D], s + 1, 0.2),
    eps: 1e-6,
  });
  return {
    norm1: norm(seed),
    qkv: lin(D, 3 * D, seed + 2, qkvBias),
    proj: lin(D, D, seed + 4),
    norm2: norm(seed + 6),
    fc1: lin(D, HIDDEN, seed + 8),
    fc2: lin(HIDDEN, D, seed + 10),
  };
}

/** The block's parameters as `[name, tensor]` (transformer-block.ts). */
export const flat = namedBlockWeights;

export type BlockFn = typeof transformerBlock;

/** Output, then the gradients of x and of every weight of `Σ y·R`, as arrays. */
export async function run(
  block: BlockFn,
  w: TransformerBlockWeights,
  drop: boolean,
  { b: B, n: N, d: D, heads: HEADS } = SIZES,
) {
  const x = fill([B, N, D], 1);
  const r = fill([B, N, D], 2);
  // Samples alternate between dropping one branch or the other and keeping both.
  const pattern = [
    [2, 0],
    [0, 2],
    [2, 2],
  ];
  const scales: [tf.Tensor, tf.Tensor] | null = drop
    ? ([0, 1].map((k) => tf.tensor1d(Array.from({ length: B }, (_, i) => pattern[i % 3][k]))) as [
        tf.Tensor,
        tf.Tensor,
      ])
    : null;
  const params = flat(w);
  const out = tf.tidy(() => {
    const f = (xi: tf.Tensor, ...ps: tf.Tensor[]) => {
      let k = 0;
      const rebuilt = Object.fromEntries(
        Object.entries(w).map(([name, layer]) => {
          const l = layer as { weight: tf.Tensor; bias: tf.Tensor | null; eps?: number };
          const weight = ps[k++];
          const bias = l.bias ? ps[k++] : null;
          return [name, l.eps === undefined ? { weight, bias } : { weight, bias, eps: l.eps }];
        }),
      ) as unknown as TransformerBlockWeights;
      return block(xi as tf.Tensor3D, rebuilt, { numHeads: HEADS, dropScales: scales }).output;
    };
    const y = f(x, ...params.map(([, t]) => t));
    const grads = tf.grads((xi: tf.Tensor, ...ps: tf.Tensor[]) => tf.sum(tf.mul(f(xi, ...ps), r)))([
      x,
      ...params.map(([, t]) => t),
    ]);
    return [y, ...grads];
  });
  const data = await Promise.all(out.map((t) => t.data() as Promise<Float32Array>));
  tf.dispose([...out, x, r, ...(scales ?? [])]);
  return { data, names: ["x", ...params.map(([n]) => n)] };
}

/** `w` with every tensor moved into a Variable (as a model's parameters are). */
export function asVariables(w: TransformerBlockWeights): TransformerBlockWeights {
  const v = (t: tf.Tensor) => {
    const out = tf.variable(t);
    t.dispose();
    return out;
  };
  const layer = <L extends { weight: tf.Tensor; bias: tf.Tensor | null }>(l: L): L => ({
    ...l,
    weight: v(l.weight),
    bias: l.bias ? v(l.bias) : null,
  });
  return {
    norm1: layer(w.norm1),
    qkv: layer(w.qkv),
    proj: layer(w.proj),
    norm2: layer(w.norm2),
    fc1: layer(w.fc1),
    fc2: layer(w.fc2),
  };
}
