// Where a SiT (v3) step's tfjs kernel calls come from: every kernel call of one step (after a
// warm-up step), counted by kernel name and by the call site in the project's packages (the
// innermost frames under packages/), so that the Identity / Reshape / Slice / customGrad
// ('unnamed scope') churn can be traced to the code that causes it. Same model as
// tools/bench/sit_step.ts (ViT-Tiny/4 at 32 px, projection 4096 → 256, λ = 5). Prints JSON.
// Kernel calls are counted as tf.profile counts them (a customGrad counts once under its scope's
// name, plus the kernels run inside it). The step's losses are read back, so the GPU runs it all.
//
//   npx tsx tools/bench/kernel-sites.ts [--backend webgpu|wasm|cpu] [--batch 2] [--depth 12]
//     [--kernels Identity,Reshape,Slice,unnamed scope] [--frames 3]
import * as tf from "@tensorflow/tfjs";
import type { BackendName } from "../../packages/core/src/index";
import { initBackend } from "../../packages/core/src/node";
import { createSiT } from "../../packages/recipes/src/index";

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}
const backend = option("backend", "webgpu") as BackendName;
const BATCH = Number(option("batch", "2"));
const DEPTH = Number(option("depth", "12"));
const FRAMES = Number(option("frames", "3"));
const TRACED = new Set(option("kernels", "Identity,Reshape,Slice,unnamed scope").split(","));

await initBackend(backend, { log: false, allowSoftwareAdapter: true });
const recipe = createSiT({
  backbone: { imgSize: 32, patchSize: 4, embedDim: 192, depth: DEPTH, numHeads: 3, inChans: 3 },
  projection: { hidden: 4096, outDim: 256 },
  optim: { batchSize: BATCH, epochs: 100, stepsPerEpoch: 100 },
  lambda: 5,
});
const views = [0, 1].map(
  (i) => tf.randomNormal([BATCH, 32, 32, 3], 0, 1, "float32", 11 + i) as tf.Tensor4D,
);
await recipe.trainStep({ views }, 0);
// Call sites sit deep under tfjs's engine frames: keep whole stacks.
Error.stackTraceLimit = Number.POSITIVE_INFINITY;

// The project frames of the current stack (innermost first), without this file's.
function site(): string {
  const frames = (new Error().stack ?? "").split("\n").slice(1);
  const own = frames
    .map((l) => l.trim())
    .filter((l) => l.includes("/packages/") && !l.includes("node_modules"))
    .map((l) =>
      l
        .replace(/^at /, "")
        .replace(/\(?\S*\/packages\//, "")
        .replace(/\)$/, ""),
    );
  return own.slice(0, FRAMES).join(" < ") || "(tfjs only)";
}

const engine = tf.engine() as unknown as {
  runKernelFunc: (p: { kernelName?: string }) => unknown;
  state: { activeScope: { name: string } | null; activeTape: unknown[] | null };
};
const original = engine.runKernelFunc.bind(engine);
const byName = new Map<string, number>();
const bySite = new Map<string, number>();
engine.runKernelFunc = (p: { kernelName?: string }) => {
  const name = p.kernelName ?? engine.state.activeScope?.name ?? "";
  byName.set(name, (byName.get(name) ?? 0) + 1);
  if (TRACED.has(name)) {
    const key = `${name} @ ${site()}`;
    bySite.set(key, (bySite.get(key) ?? 0) + 1);
  }
  return original(p);
};
const tensors0 = tf.memory().numTensors;
const r = await recipe.trainStep({ views }, 1);
engine.runKernelFunc = original;
const sorted = (m: Map<string, number>) =>
  Object.fromEntries([...m].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])));
console.log(
  JSON.stringify(
    {
      backend,
      batch: BATCH,
      depth: DEPTH,
      kernel_calls: [...byName.values()].reduce((a, b) => a + b, 0),
      tensors_leaked: tf.memory().numTensors - tensors0,
      loss: r.loss,
      by_kernel: sorted(byName),
      traced_by_site: sorted(bySite),
    },
    null,
    2,
  ),
);
tf.dispose(views);
recipe.dispose();
process.exit(0);
