// Run by backend.process.test.ts in a fresh process (node --import tsx), so that nothing has
// touched tfjs before: prints what it saw as JSON on stdout. Argument: the scenario.
import * as tf from "@tensorflow/tfjs";
import * as core from "./index";
import * as node from "./node";

const scenario = process.argv[2];
const report: Record<string, unknown> = {};
if (scenario === "no-init") {
  // Importing all of @sit/core and @sit/core/node, and computing without initBackend.
  report.exports = Object.keys(core).length + Object.keys(node).length;
  report.wasmRegistered = tf.findBackendFactory("wasm") !== null;
  const a = tf.tensor2d([
    [1, 2],
    [3, 4],
  ]);
  report.product = Array.from(await tf.matMul(a, a).data());
  report.backend = tf.getBackend();
} else if (scenario === "cpu") {
  await node.initBackend("cpu", { log: false });
  report.sum = Array.from(await tf.add(tf.tensor1d([1, 2]), 1).data());
} else if (scenario === "webgpu-or-cpu") {
  const info = await node.initBackend(["webgpu", "cpu"], {
    log: false,
    allowSoftwareAdapter: false,
  });
  report.name = info.name;
  report.skipped = info.skipped;
} else throw new Error(`scenario: expected no-init, cpu or webgpu-or-cpu, got ${scenario}`);
process.stdout.write(JSON.stringify(report));
