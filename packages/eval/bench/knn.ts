// k-NN timing: nTest × nTrain × dim random features, ks = DINO's [10, 20, 100, 200].
// Usage: npx tsx packages/eval/bench/knn.ts [backend=wasm] [nTest=10000] [nTrain=60000] [dim=384]
// Prints one JSON line.
import * as tf from "@tensorflow/tfjs";
import { Rng, type BackendName } from "@sit/core";
import { initBackend } from "@sit/core/node";
import { knnEval } from "../src/knn";

const [backend = "wasm", nTest = "10000", nTrain = "60000", dim = "384", chunk = "256"] = process.argv.slice(2);
await initBackend(backend as BackendName, { log: false });
const d = Number(dim);
const rng = Rng.seed(0);
const make = (n: number) => {
  const features = new Float32Array(n * d);
  rng.fillNormal(features);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) labels[i] = rng.int(0, 10);
  return { features, labels, dim: d };
};
const train = make(Number(nTrain));
const test = make(Number(nTest));
const t0 = performance.now();
const res = knnEval(train, test, { ks: [10, 20, 100, 200], numClasses: 10, chunkSize: Number(chunk) });
const ms = performance.now() - t0;
const gflop = (2 * Number(nTest) * Number(nTrain) * d) / 1e9;
console.log(
  JSON.stringify({
    bench: "knnEval",
    backend: tf.getBackend(),
    nTest: Number(nTest),
    nTrain: Number(nTrain),
    dim: d,
    ks: [10, 20, 100, 200],
    chunkSize: Number(chunk),
    seconds: +(ms / 1000).toFixed(2),
    matmulGflop: +gflop.toFixed(1),
    top1AtK20: res[1].top1,
  }),
);
