// Run by fit.signal.test.ts in a child process (node --import tsx): trains until a real signal
// arrives, then prints fit's result as JSON. Argument: the checkpoint directory.
import { setTimeout as sleep } from "node:timers/promises";
import * as tf from "@tensorflow/tfjs";
import { fit } from "./fit-node";
import { RegressionRecipe, regressionLoader } from "./test-support";

await tf.setBackend("cpu");
const dir = process.argv[2];
const result = await fit(new RegressionRecipe(), regressionLoader(4), {
  maxSteps: 100_000,
  sinks: [],
  checkpoint: { dir, everySteps: 1_000_000 },
  onWarning: (m) => process.stderr.write(`${m}\n`),
  onStep: async (e) => {
    process.stdout.write(`STEP ${e.step}\n`);
    await sleep(20);
  },
});
process.stdout.write(
  `RESULT ${JSON.stringify({ ...result, listeners: process.listenerCount("SIGTERM") })}\n`,
);
