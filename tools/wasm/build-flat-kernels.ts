// Compiles packages/kernels/src/wasm/flat-kernels.wat into flat-kernels.wasm.ts (two binaries,
// importing a shared or an unshared memory, as base64), with wabt (a dev dependency only).
//   npx tsx tools/wasm/build-flat-kernels.ts [--check]
// --check exits 1 when the committed file differs from a fresh compile (flat-kernels.test.ts
// runs the same comparison).
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { FLAT_KERNELS_WAT, FLAT_KERNELS_WASM_TS, compileFlatKernels } from "./flat-kernels";

const out = await compileFlatKernels(readFileSync(FLAT_KERNELS_WAT, "utf8"));
const current = readFileSync(FLAT_KERNELS_WASM_TS, "utf8");
if (process.argv.includes("--check")) {
  if (current !== out) {
    console.error(
      `${FLAT_KERNELS_WASM_TS} is stale: run npx tsx ${fileURLToPath(import.meta.url)}`,
    );
    process.exit(1);
  }
} else writeFileSync(FLAT_KERNELS_WASM_TS, out);
