import { fileURLToPath } from "node:url";
import wabt from "wabt";

const dir = fileURLToPath(new URL("../../packages/kernels/src/wasm/", import.meta.url));
/** The WAT sources, by the name of the constants they become. */
export const FLAT_KERNELS_WAT = {
  UPDATE_KERNELS: `${dir}update-kernels.wat`,
  LAYER_KERNELS: `${dir}layer-kernels.wat`,
  ACTIVATION_KERNELS: `${dir}activation-kernels.wat`,
  MATMUL_KERNELS: `${dir}matmul-kernels.wat`,
  PERMUTE_KERNELS: `${dir}permute-kernels.wat`,
};
export const FLAT_KERNELS_WASM_TS = `${dir}flat-kernels.wasm.ts`;

// tfjs's threaded build runs on a shared memory of at most 4 GiB; its single-threaded build on an
// unshared one. An imported memory's declared limits must admit the actual ones.
const MEMORIES = {
  shared: '(import "env" "memory" (memory 1 65536 shared))',
  unshared: '(import "env" "memory" (memory 1))',
};

/** The text of flat-kernels.wasm.ts (as biome formats it) for the WAT sources, by constant name. */
export async function compileFlatKernels(sources: Record<string, string>): Promise<string> {
  const w = await wabt();
  const binary = (name: string, wat: string, memory: string) => {
    const module = w.parseWat(`${name}.wat`, wat.replace(";; @memory", memory), {
      simd: true,
      threads: true,
      bulk_memory: true,
    });
    try {
      // wabt's typings omit validate's features argument (its shared memory needs `threads`).
      (module.validate as (features?: object) => void)({
        simd: true,
        threads: true,
        bulk_memory: true,
      });
      return Buffer.from(module.toBinary({}).buffer).toString("base64");
    } finally {
      module.destroy();
    }
  };
  const lines = [
    "// Generated from *-kernels.wat by tools/wasm/build-flat-kernels.ts: do not edit.",
    "",
  ];
  for (const [name, wat] of Object.entries(sources)) {
    lines.push(
      `/** ${name}, importing a shared memory (tfjs's threaded wasm build), base64. */`,
      `export const ${name}_SHARED =\n  "${binary(name, wat, MEMORIES.shared)}";`,
      "",
      `/** ${name}, importing an unshared memory (single-threaded build), base64. */`,
      `export const ${name}_UNSHARED =\n  "${binary(name, wat, MEMORIES.unshared)}";`,
      "",
    );
  }
  return lines.join("\n");
}

/** The WAT sources as compileFlatKernels takes them. */
export function readFlatKernelSources(read: (path: string) => string): Record<string, string> {
  return Object.fromEntries(Object.entries(FLAT_KERNELS_WAT).map(([k, p]) => [k, read(p)]));
}
