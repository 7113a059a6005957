// One build configuration for every @sit package: ESM + CJS + .d.ts, dependencies external.
import { defineConfig, type Options } from "tsup";

export function packageConfig(overrides: Options = {}) {
  return defineConfig({
    entry: ["src/index.ts"],
    format: ["esm", "cjs"],
    dts: { compilerOptions: { paths: {} } },
    sourcemap: true,
    clean: true,
    target: "node20",
    platform: "node",
    splitting: false,
    treeshake: true,
    // Workspace packages resolve through node_modules at build time, never through tsconfig paths.
    tsconfig: "tsconfig.json",
    external: [/^@sit\//, /^@tensorflow\//, "webgpu", "sharp"],
    ...overrides,
  });
}
