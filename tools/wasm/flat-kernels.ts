import { fileURLToPath } from "node:url";
import wabt from "wabt";

const dir = fileURLToPath(new URL("../../packages/kernels/src/wasm/", import.meta.url));
export const FLAT_KERNELS_WAT = `${dir}flat-kernels.wat`;
export const FLAT_KERNELS_WASM_TS = `${dir}flat-kernels.wasm.ts`;

// tfjs's threaded build runs on a shared memory of at most 4 GiB; its single-threaded build on an
// unshared one. An imported memory's declared limits must admit the actual ones.
const MEMORIES = {
  shared: '(import "env" "memory" (memory 1 65536 shared))',
  unshared: '(import "env" "memory" (memory 1))',
};

/** The text of flat-kernels.wasm.ts (as biome formats it) for the WAT source `wat`. */
export async function compileFlatKernels(wat: string): Promise<string> {
  const w = await wabt();
  const binary = (memory: string) => {
    const module = w.parseWat("flat-kernels.wat", wat.replace(";; @memory", memory), {
      simd: true,
      threads: true,
    });
    try {
      // wabt's typings omit validate's features argument (its shared memory needs `threads`).
      (module.validate as (features?: object) => void)({ simd: true, threads: true });
      return Buffer.from(module.toBinary({}).buffer).toString("base64");
    } finally {
      module.destroy();
    }
  };
  return [
    "// Generated from flat-kernels.wat by tools/wasm/build-flat-kernels.ts: do not edit.",
    "",
    "/** The flat-kernels module importing a shared memory (tfjs's threaded wasm build), base64. */",
    `export const FLAT_KERNELS_SHARED =\n  "${binary(MEMORIES.shared)}";`,
    "",
    "/** The flat-kernels module importing an unshared memory (single-threaded build), base64. */",
    `export const FLAT_KERNELS_UNSHARED =\n  "${binary(MEMORIES.unshared)}";`,
    "",
  ].join("\n");
}
