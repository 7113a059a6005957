import { readdirSync, existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

const root = fileURLToPath(new URL(".", import.meta.url));
const packages = readdirSync(`${root}packages`).filter((d) => existsSync(`${root}packages/${d}/package.json`));

// Tests import the packages' sources, not their builds, so `npm test` needs no build step. A
// package's Node-only entry `@sit/<p>/node` is its src/node.ts; listed first, since an alias also
// matches the paths below its name.
const alias = Object.fromEntries([
  ...packages
    .filter((p) => existsSync(`${root}packages/${p}/src/node.ts`))
    .map((p) => [`@sit/${p}/node`, `${root}packages/${p}/src/node.ts`]),
  ...packages.map((p) => [`@sit/${p}`, `${root}packages/${p}/src/index.ts`]),
]);

const shared = {
  resolve: { alias },
  test: {
    setupFiles: [`${root}packages/testing/src/setup.ts`],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: "forks" as const,
  },
};

export default defineConfig({
  ...shared,
  test: {
    ...shared.test,
    projects: [
      ...packages.map((p) => ({
        ...shared,
        test: { ...shared.test, name: p, include: [`packages/${p}/src/**/*.test.ts`] },
      })),
      {
        ...shared,
        test: { ...shared.test, name: "tools", include: ["tools/**/*.test.ts", "examples/*/src/**/*.test.ts"] },
      },
      // The docs run their snippets as programs of their own, as a reader would: no setup file.
      {
        ...shared,
        test: { ...shared.test, name: "docs", setupFiles: [], include: ["docs/**/*.test.ts"] },
      },
    ],
  },
});
