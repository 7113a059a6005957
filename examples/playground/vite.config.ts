import { existsSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

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

// Cross-origin isolation gives the page SharedArrayBuffer, which tfjs's multi-threaded wasm
// build needs (without it, wasm runs on one thread).
const isolation = {
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Embedder-Policy": "require-corp",
};

export default defineConfig({
  base: "./",
  resolve: { alias },
  worker: { format: "es" },
  server: { headers: isolation, fs: { allow: [root] } },
  preview: { headers: isolation },
  build: { target: "es2022", outDir: "dist", chunkSizeWarningLimit: 8192 },
});
