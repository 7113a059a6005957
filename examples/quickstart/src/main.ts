// `npm run quickstart` (root) → `npm run -w @sit/example-quickstart start` → this file.
//   --smoke          every stage in a few steps (what CI runs; also SIT_QUICKSTART_SMOKE=1)
//   --backend NAME   override the config's backend (wasm)
//   --out DIR        output folder (default examples/quickstart/runs/quickstart)
import { parseArgs } from "node:util";
import { runQuickstart } from "./quickstart";

const { values } = parseArgs({
  options: {
    smoke: { type: "boolean", default: process.env.SIT_QUICKSTART_SMOKE === "1" },
    backend: { type: "string" },
    out: { type: "string" },
  },
});

try {
  await runQuickstart({
    smoke: values.smoke,
    ...(values.backend ? { backend: values.backend } : {}),
    ...(values.out ? { out: values.out } : {}),
  });
} catch (err) {
  process.stderr.write(`quick start failed: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exitCode = 1;
}
