// Measures the step times that the examples' READMEs extrapolate from: one SiT pretraining step
// (paper configuration: ViT-S/16 at 224 px, projection head 4096/256, GMML corruption drawn on the
// CPU) and one fine-tuning step (ViT-S/16 + SiT head, forward + backward + AdamW) at a small batch,
// on the chosen backend, with random images. Prints one JSON object.
//
//   npx tsx tools/repro/step-time.ts [--backend wasm] [--batch 4] [--steps 2] [--img 224]
//                                    [--preset small] [--patch 16]
import { cpus, loadavg } from "node:os";
import { parseArgs } from "node:util";
import * as tf from "@tensorflow/tfjs";
import { AdamW, type BackendName, Rng } from "@sit/core";
import { initBackend } from "@sit/core/node";
import { createSiT } from "@sit/recipes";
import { SitClassifier, VisionTransformer } from "@sit/vit";

const { values } = parseArgs({
  options: {
    backend: { type: "string", default: "wasm" },
    batch: { type: "string", default: "4" },
    steps: { type: "string", default: "2" },
    img: { type: "string", default: "224" },
    patch: { type: "string", default: "16" },
    preset: { type: "string", default: "small" },
    /** Skip the SiT step (measure the backbone's fine-tuning step and forward only). */
    "no-sit": { type: "boolean", default: false },
    /** Accept a software WebGPU adapter (Mesa llvmpipe). */
    "software-webgpu": { type: "boolean", default: false },
  },
});
const B = Number(values.batch);
const steps = Number(values.steps);
const img = Number(values.img);
const patch = Number(values.patch);
const preset = values.preset as "tiny" | "small" | "base";
const info = await initBackend(values.backend as BackendName, {
  log: false,
  allowSoftwareAdapter: values["software-webgpu"],
});

/** Wait until the device has finished the work queued so far (GPU backends run asynchronously). */
async function sync(t: tf.Tensor): Promise<void> {
  await t.data();
}

async function timeSteps(what: string, run: () => void | Promise<void>): Promise<number> {
  const w0 = performance.now();
  await run(); // warm-up: kernels compiled, buffers allocated
  console.error(`${what}: warm-up ${((performance.now() - w0) / 1000).toFixed(1)} s`);
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) await run();
  const ms = (performance.now() - t0) / steps;
  console.error(`${what}: ${(ms / 1000).toFixed(1)} s per step`);
  return ms;
}

const runSit = !values["no-sit"];
const WIDTH = { tiny: 192, small: 384, base: 768 } as const;
const dims = { embedDim: WIDTH[preset], depth: 12 };
let sitMs: number | undefined;
if (runSit) {
  const views = () =>
    [tf.randomNormal([B, img, img, 3]), tf.randomNormal([B, img, img, 3])] as tf.Tensor4D[];
  const sit = createSiT({
    backbone: { preset, imgSize: img, patchSize: patch, checkpointBlocks: info.name === "wasm" },
    lambda: 5,
    optim: { batchSize: B, epochs: 1, stepsPerEpoch: steps + 1 },
  });
  let step = 0;
  sitMs = await timeSteps("SiT step", async () => {
    const v = views();
    await sit.trainStep({ views: v }, step++);
    tf.dispose(v);
  });
  sit.dispose();
}

const rng = Rng.seed(0);
const vit = new VisionTransformer({
  imgSize: img,
  patchSize: patch,
  ...dims,
  numHeads: dims.embedDim / 64,
  dropPathRate: 0.1,
  checkpointBlocks: info.name === "wasm",
  rng: rng.split(),
});
const head = new SitClassifier(dims.embedDim, 100, { rng: rng.split() });
const named = [...vit.namedParameters(), ...head.namedParameters("head")];
const opt = new AdamW(named, { lr: 1e-4, weightDecay: 0.05 });
const fineTuneMs = await timeSteps("fine-tuning step", async () => {
  tf.tidy(() => {
    const x = tf.randomNormal([B, img, img, 3]);
    const y = tf.oneHot(tf.zeros([B], "int32"), 100);
    const { grads } = tf.variableGrads(
      () => tf.losses.softmaxCrossEntropy(y, head.apply(vit.forward(x, { rng }))) as tf.Scalar,
      named.map(([, p]) => p),
    );
    opt.step(grads);
  });
  await sync(named[0][1]); // the step is done when its last update has landed
});
vit.eval();
const forwardMs = await timeSteps("eval forward", async () => {
  const cls = tf.tidy(() => vit.forward(tf.randomNormal([B, img, img, 3])).cls);
  await sync(cls);
  cls.dispose();
});
opt.dispose();
vit.dispose();
head.dispose();

console.log(
  JSON.stringify({
    backend: info.name,
    adapter: info.adapter,
    threads: info.threads,
    tfjs: tf.version.tfjs,
    model: `ViT-${preset[0].toUpperCase()}/${patch} at ${img} px (D ${dims.embedDim}, depth ${dims.depth})`,
    batch: B,
    sitStepMs: sitMs === undefined ? undefined : Math.round(sitMs),
    fineTuneStepMs: Math.round(fineTuneMs),
    evalForwardMs: Math.round(forwardMs),
    machine: {
      cpus: cpus().length,
      model: cpus()[0]?.model,
      loadavg: loadavg().map((x) => +x.toFixed(2)),
    },
  }),
);
