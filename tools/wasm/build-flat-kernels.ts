// Compiles packages/kernels/src/wasm/*-kernels.wat into flat-kernels.wasm.ts (each as
// two binaries, importing a shared or an unshared memory, as base64), with wabt (a dev dependency).
//   npx tsx tools/wasm/build-flat-kernels.ts [--check]
// --check exits 1 when the committed file differs from a fresh compile (flat-updates.test.ts
// runs the same comparison).
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { FLAT_KERNELS_WASM_TS, compileFlatKernels, readFlatKernelSources } from "./flat-kernels";

const out = await compileFlatKernels(readFlatKernelSources((p) => readFileSync(p, "utf8")));
const current = readFileSync(FLAT_KERNELS_WASM_TS, "utf8");
if (process.argv.includes("--check")) {
  if (current !== out) {
    console.error(
      `${FLAT_KERNELS_WASM_TS} is stale: run npx tsx ${fileURLToPath(import.meta.url)}`,
    );
    process.exit(1);
  }
} else writeFileSync(FLAT_KERNELS_WASM_TS, out);
