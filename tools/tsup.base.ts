// One build configuration for every @sit package: ESM + CJS + .d.ts, dependencies external.
import { readFileSync } from "node:fs";
import { defineConfig, type Options } from "tsup";

/**
 * A package with a `./node` entry builds `src/index.ts` and `src/node.ts`. The Node entry imports
 * the main one by the package's own name (kept external, so its build carries no second copy);
 * while the declarations are built, that name means the package's own sources, since its
 * `dist/index.d.ts` does not exist yet.
 */
export function packageConfig(overrides: Options & { nodeEntry?: boolean } = {}) {
  const { nodeEntry = false, ...rest } = overrides;
  const name = (JSON.parse(readFileSync("package.json", "utf8")) as { name: string }).name;
  return defineConfig({
    entry: nodeEntry ? ["src/index.ts", "src/node.ts"] : ["src/index.ts"],
    format: ["esm", "cjs"],
    dts: {
      compilerOptions: { paths: nodeEntry ? { [name]: ["./src/index.ts"] } : {} },
    },
    sourcemap: true,
    clean: true,
    target: "node20",
    platform: "node",
    splitting: false,
    treeshake: true,
    // Workspace packages resolve through node_modules at build time, never through tsconfig paths.
    tsconfig: "tsconfig.json",
    external: [/^@sit\//, /^@tensorflow\//, "webgpu", "sharp"],
    ...rest,
  });
}
