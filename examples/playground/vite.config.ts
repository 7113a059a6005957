import { existsSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { type Plugin, defineConfig } from "vite";

const root = fileURLToPath(new URL("../..", import.meta.url));
const packages = readdirSync(`${root}packages`).filter((d) =>
  existsSync(`${root}packages/${d}/package.json`),
);

// The page is built from the packages' sources, as the tests run them: no package build first,
// and an edit to a package shows in `npm run dev` at once. Only the main entries are aliased.
const alias = packages.map((p) => ({
  find: new RegExp(`^@sit/${p}$`),
  replacement: `${root}packages/${p}/src/index.ts`,
}));

// The packages' sources keep their side effects, as their published builds do. A package's
// `sideEffects` field names only its dist files, so Rollup took every aliased source module for
// side-effect free and dropped the ones whose exports the page does not import: @sit/kernels'
// wasm kernels register themselves on import (setWasmKernels(true)), and the page trained without
// them (the worker bundle had no fused LayerNorm, AdamW or EMA kernel).
const packagesDir = `${root}packages/`;
function keepPackageSideEffects(): Plugin {
  return {
    name: "sit:package-sources-keep-side-effects",
    transform(code, id) {
      if (id.startsWith(packagesDir) && id.includes("/src/"))
        return { code, map: null, moduleSideEffects: true };
      return null;
    },
  };
}

// Cross-origin isolation gives the page SharedArrayBuffer, which tfjs's multi-threaded wasm
// build needs (without it, wasm runs on one thread).
const isolation = {
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Embedder-Policy": "require-corp",
};

export default defineConfig({
  base: "./",
  resolve: { alias },
  plugins: [keepPackageSideEffects()],
  // Workers are bundled apart, with their own plugins.
  worker: { format: "es", plugins: () => [keepPackageSideEffects()] },
  server: { headers: isolation, fs: { allow: [root] } },
  preview: { headers: isolation },
  build: { target: "es2022", outDir: "dist", chunkSizeWarningLimit: 8192 },
});
