// webgpu: the host time of a student's transformer blocks, forward and backward under a gradient
// tape, as one transformerBlock call per block (a tfjs kernel each way per block) against one
// transformerStack call (one taped kernel each way for all the blocks, block-stack-train.ts).
// Both encode the same dispatches; this measures what the engine calls and tape nodes per block
// cost. ViT-Tiny's blocks (D 192, 3 heads, MLP 768), drop path on every block but the first, the
// weights as Variables. The two ways alternate step by step in one process (a loaded machine
// slows both alike). Host time: from the step's start until the submit of its commands returns
// (the GPU's work excluded: each step's read waits for it outside the span). Prints one JSON object.
//
//   LP_NUM_THREADS=1 npx tsx tools/bench/block-stack-host.ts [--depth 12] [--batch 2] [--tokens 5]
//     [--steps 40]
import { loadavg } from "node:os";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../../packages/core/src/node";
import {
  type TransformerBlockWeights,
  settleBufferPool,
  transformerBlock,
  transformerStack,
} from "../../packages/kernels/src/index";
import { webgpuInternals } from "../../packages/kernels/src/webgpu/flat-buffers";

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

const depth = Number(option("depth", "12"));
const batch = Number(option("batch", "2"));
const tokens = Number(option("tokens", "5"));
const steps = Number(option("steps", "40"));
for (const [name, v] of Object.entries({ depth, batch, tokens, steps }))
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name}: expected a positive integer`);
const [D, HEADS, HIDDEN] = [192, 3, 768];
const warmup = 5;

await initBackend("webgpu", { allowSoftwareAdapter: true, log: () => {} });
const b = webgpuInternals(tf.backend());

const linear = (i: number, o: number) => ({
  weight: tf.variable(tf.randomNormal([i, o], 0, i ** -0.5)),
  bias: tf.variable(tf.zeros([o])),
});
const norm = () => ({
  weight: tf.variable(tf.ones([D])),
  bias: tf.variable(tf.zeros([D])),
  eps: 1e-6,
});
const blocks: TransformerBlockWeights[] = Array.from({ length: depth }, () => ({
  norm1: norm(),
  qkv: linear(D, 3 * D),
  proj: linear(D, D),
  norm2: norm(),
  fc1: linear(D, HIDDEN),
  fc2: linear(HIDDEN, D),
}));
const variables = blocks.flatMap((w) =>
  Object.values(w).flatMap((l) => [l.weight, l.bias] as tf.Variable[]),
);
const x = tf.randomNormal([batch, tokens, D]) as tf.Tensor3D;
const keep = 0.8;
/** Drop-path factors per block (none on the first, as a ViT's linear schedule starting at 0). */
const dropScales = () =>
  blocks.map((_, i) =>
    i === 0
      ? null
      : ([0, 1].map(() =>
          tf.tensor1d(Array.from({ length: batch }, (_, k) => ((k + i) % 3 === 0 ? 0 : 1 / keep))),
        ) as [tf.Tensor, tf.Tensor]),
  );

/** Host ms of one forward + backward, and its loss (read by the caller after the span). */
function step(stacked: boolean): [number, tf.Tensor[]] {
  settleBufferPool();
  const t0 = performance.now();
  const out = tf.tidy(() => {
    const scales = dropScales();
    const { value, grads } = tf.variableGrads(() => {
      const y = stacked
        ? transformerStack(x, blocks, { numHeads: HEADS, dropScales: scales })
        : blocks.reduce(
            (h, w, i) => transformerBlock(h, w, { numHeads: HEADS, dropScales: scales[i] }).output,
            x,
          );
      return tf.mean(tf.square(y)) as tf.Scalar;
    }, variables);
    return [value, ...Object.values(grads)];
  });
  b.ensureCommandEncoderReady();
  b.endComputePassEncoder();
  b.submitQueue();
  return [performance.now() - t0, out];
}

const loadStart = loadavg();
const times: Record<"per_block" | "stack", number[]> = { per_block: [], stack: [] };
for (let i = 0; i < 2 * (steps + warmup); i++) {
  const way = i % 2 === 0 ? "per_block" : "stack";
  const [ms, out] = step(way === "stack");
  await out[0].data();
  tf.dispose(out);
  if (i >= 2 * warmup) times[way].push(ms);
}
const quantile = (a: number[], q: number) => {
  const s = [...a].sort((p, q2) => p - q2);
  return Math.round(s[Math.floor(q * (s.length - 1))] * 100) / 100;
};
const summary = (a: number[]) => ({
  median: quantile(a, 0.5),
  p25: quantile(a, 0.25),
  min: quantile(a, 0),
});
console.log(
  JSON.stringify({
    bench: "block_stack_host",
    blocks: depth,
    batch,
    tokens,
    steps,
    warmup,
    host_ms_per_block: summary(times.per_block),
    host_ms_stack: summary(times.stack),
    loadavg_start: loadStart,
    loadavg_end: loadavg(),
    note: "Host ms of one forward + backward of the blocks under a tape, until the submit of its commands returns: one transformerBlock per block against one transformerStack (alternating).",
  }),
);
process.exit(0);
