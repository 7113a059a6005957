// AdamW step cost on a ViT-Tiny-shaped parameter set (150 tensors, ≈5.5M parameters).
// Run: npx tsx tools/bench/optimizer.ts [--backends wasm,cpu] [--steps 20]
// Prints JSON: ms per step (per-tensor clipping at 3.0 + AdamW, SiT's setting) and the number of
// tfjs kernel launches per step (tf.profile) for both AdamW paths (host: fused typed-array loop,
// the default on cpu/wasm; device: tfjs kernels on flat buffers, the default on GPU backends),
// next to a straightforward per-tensor implementation for reference.
import { loadavg } from "node:os";
import * as tf from "@tensorflow/tfjs";
import { AdamW, type BackendName } from "@sit/core";
import { initBackend } from "@sit/core/node";

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

/** timm's vit_tiny_patch16_224 without the classifier: our layouts ([in, out] weights). */
function vitTinyShapes(): [string, number[]][] {
  const d = 192;
  const out: [string, number[]][] = [
    ["cls_token", [1, 1, d]],
    ["pos_embed", [1, 197, d]],
    ["patch_embed.proj.weight", [16 * 16 * 3, d]],
    ["patch_embed.proj.bias", [d]],
  ];
  for (let b = 0; b < 12; b++) {
    const p = `blocks.${b}`;
    out.push(
      [`${p}.norm1.weight`, [d]],
      [`${p}.norm1.bias`, [d]],
      [`${p}.attn.qkv.weight`, [d, 3 * d]],
      [`${p}.attn.qkv.bias`, [3 * d]],
      [`${p}.attn.proj.weight`, [d, d]],
      [`${p}.attn.proj.bias`, [d]],
      [`${p}.norm2.weight`, [d]],
      [`${p}.norm2.bias`, [d]],
      [`${p}.mlp.fc1.weight`, [d, 4 * d]],
      [`${p}.mlp.fc1.bias`, [4 * d]],
      [`${p}.mlp.fc2.weight`, [4 * d, d]],
      [`${p}.mlp.fc2.bias`, [d]],
    );
  }
  out.push(["norm.weight", [d]], ["norm.bias", [d]]);
  return out;
}

/** The obvious implementation, one chain of ops per tensor, for comparison of kernel counts. */
function naiveStep(
  params: [string, tf.Variable][],
  grads: Record<string, tf.Tensor>,
  m: tf.Variable[],
  v: tf.Variable[],
  t: number,
): void {
  const [lr, wd, b1, b2, eps, clip] = [1e-4, 0.04, 0.9, 0.999, 1e-8, 3];
  tf.tidy(() => {
    params.forEach(([name, p], i) => {
      let g = grads[name];
      g = g.mul(tf.minimum(tf.div(clip, tf.norm(g).add(1e-6)), 1));
      const decay = p.rank > 1 && !name.endsWith(".bias") ? wd : 0;
      const p1 = p.mul(1 - lr * decay);
      const mNew = m[i].mul(b1).add(g.mul(1 - b1));
      const vNew = v[i].mul(b2).add(g.square().mul(1 - b2));
      const denom = vNew
        .sqrt()
        .div(Math.sqrt(1 - b2 ** t))
        .add(eps);
      p.assign(p1.sub(mNew.div(denom).mul(lr / (1 - b1 ** t))));
      m[i].assign(mNew);
      v[i].assign(vNew);
    });
  });
}

async function timeIt(fn: () => void, steps: number): Promise<number> {
  fn(); // warm-up (kernel compilation, first allocations)
  fn();
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) fn();
  return (performance.now() - t0) / steps;
}

async function benchBackend(backend: BackendName, steps: number) {
  const info = await initBackend(backend, { log: false, allowSoftwareAdapter: true });
  const shapes = vitTinyShapes();
  const params: [string, tf.Variable][] = shapes.map(([n, s], i) => [
    n,
    tf.variable(tf.randomNormal(s, 0, 0.02, "float32", i)),
  ]);
  // Gradients large enough that per-tensor clipping at 3.0 actually scales some of them.
  const grads = Object.fromEntries(
    shapes.map(([n, s], i) => [n, tf.randomNormal(s, 0, 0.01, "float32", 1000 + i)]),
  );
  const impls: Record<
    string,
    { msPerStep: number; kernelsPerStep: number; tensorsLeaked: number }
  > = {};
  for (const implementation of ["host", "device"] as const) {
    const opt = new AdamW(params, {
      lr: 1e-4,
      weightDecay: 0.04,
      clipPerTensor: 3,
      implementation,
    });
    const before = tf.memory().numTensors;
    // The device path on wasm pays for tfjs's Slice/SplitV copying whole buffers: time fewer steps.
    const n = implementation === "device" && backend !== "webgpu" ? 2 : steps;
    const msPerStep = await timeIt(() => opt.step(grads), n);
    await params[0][1].data(); // include queued GPU work
    // tf.profile reuses its result object: read the count straight away.
    const kernelsPerStep = (await tf.profile(() => opt.step(grads))).kernels.length;
    impls[`flatAdamW_${implementation}`] = {
      msPerStep: +msPerStep.toFixed(2),
      kernelsPerStep,
      tensorsLeaked: tf.memory().numTensors - before,
    };
    opt.dispose();
  }

  const m = params.map(([, p]) => tf.variable(tf.zerosLike(p), false));
  const v = params.map(([, p]) => tf.variable(tf.zerosLike(p), false));
  let t = 0;
  const naiveMs = await timeIt(
    () => naiveStep(params, grads, m, v, ++t),
    Math.max(2, Math.floor(steps / 4)),
  );
  const naiveKernels = (await tf.profile(() => naiveStep(params, grads, m, v, ++t))).kernels.length;

  const result = {
    backend: info.name,
    ...(info.threads !== undefined ? { threads: info.threads, simd: info.simd } : {}),
    ...(info.adapter ? { adapter: info.adapter } : {}),
    tensors: params.length,
    parameters: params.reduce((s, [, p]) => s + p.size, 0),
    stepsTimed: steps,
    ...impls,
    perTensorAdamW_reference: { msPerStep: +naiveMs.toFixed(2), kernelsPerStep: naiveKernels },
  };
  tf.dispose([...params.map(([, p]) => p), ...Object.values(grads), ...m, ...v]);
  return result;
}

const backends = arg("backends", "wasm,cpu").split(",") as BackendName[];
const steps = Number(arg("steps", "20"));
const results = [];
for (const b of backends)
  results.push(await benchBackend(b, b === "cpu" ? Math.min(steps, 5) : steps));
console.log(
  JSON.stringify(
    {
      bench: "AdamW step, ViT-Tiny-shaped parameters, per-tensor clipping 3.0",
      node: process.version,
      loadavg1m: +loadavg()[0].toFixed(2),
      results,
    },
    null,
    2,
  ),
);
process.exit(0);
