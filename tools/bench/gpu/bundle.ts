// Bundles the GPU bench entry points (tools/bench/sit_step.ts, tools/bench/gemm-webgpu.ts,
// tools/bench/step-replay.ts, tools/bench/gpu/check-kernels.ts)
// with tfjs, @tensorflow/tfjs-backend-webgpu, the `webgpu` (Dawn) loader and @sit/* sources into
// ESM files under <outdir> (shared chunks), runnable by a bare `node` with no node_modules.
// Called by pack.sh:  npx tsx tools/bench/gpu/bundle.ts <outdir>
//
// @sit/core/node loads optional backends with `createRequire(import.meta.url)(id)`, which a bundle
// cannot follow; the plugin below gives it a static table of the bundled ones instead
// (@tensorflow/tfjs-backend-webgpu is a static import(), which esbuild bundles by itself).
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { type Plugin, build } from "esbuild";

const root = fileURLToPath(new URL("../../../", import.meta.url));
const outdir = process.argv[2];
if (!outdir) throw new Error("usage: bundle.ts <outdir>");

// @sit/core loads optional packages through backend-require.ts's `requireFrom` (a createRequire)
// and probes Dawn in a child process that `require`s the file `requireFrom.resolve("webgpu")`
// names. In the bundle, both come from this table: the bundled modules, and webgpu-entry.mjs
// (written beside the bundle below) loading the Dawn addon from dist/.
const bundledRequire: Plugin = {
  name: "sit-bundled-require",
  setup(b) {
    b.onLoad({ filter: /packages[\\/]core[\\/]src[\\/]backend-require\.ts$/ }, (args) => {
      const src = readFileSync(args.path, "utf8");
      const from = "const requireFrom = createRequire(import.meta.url);";
      if (!src.includes(from)) throw new Error(`bundle.ts: "${from}" not found in ${args.path}`);
      const table = `const notBundled = (id: string) => {
  const e = new Error(\`Cannot find module '\${id}' (not in the bench bundle)\`) as NodeJS.ErrnoException;
  e.code = "MODULE_NOT_FOUND";
  return e;
};
const requireFrom = Object.assign(
  (id: string): unknown => {
    if (id === "webgpu") return require("webgpu");
    throw notBundled(id);
  },
  {
    resolve: (id: string): string => {
      if (id === "webgpu") return decodeURIComponent(new URL("./webgpu-entry.mjs", import.meta.url).pathname);
      throw notBundled(id);
    },
  },
);
void createRequire;`;
      return { contents: src.replace(from, table), loader: "ts" };
    });
  },
};

const result = await build({
  absWorkingDir: root,
  entryPoints: {
    sit_step: "tools/bench/sit_step.ts",
    "check-kernels": "tools/bench/gpu/check-kernels.ts",
    "gemm-webgpu": "tools/bench/gemm-webgpu.ts",
    "step-replay": "tools/bench/step-replay.ts",
  },
  outdir,
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  outExtension: { ".js": ".mjs" },
  tsconfig: "tsconfig.json",
  // Lazy optional requires inside tfjs that never run here.
  external: ["node-fetch", "@tensorflow/tfjs-node", "@tensorflow/tfjs-node-gpu"],
  banner: {
    js: 'import { createRequire as __sitCreateRequire } from "node:module"; const require = __sitCreateRequire(import.meta.url);',
  },
  plugins: [bundledRequire],
  logLevel: "warning",
  metafile: true,
  // Our packages say "sideEffects": false, but kernel registration on import is one: keep it.
  ignoreAnnotations: true,
});
writeFileSync(
  `${outdir}/webgpu-entry.mjs`,
  `// Dawn for the bundle (what the webgpu package's index.js does), for @sit/core's adapter probe.
import { createRequire } from "node:module";
const require = createRequire(import.meta.url);
const { create, globals } = require(\`./dist/\${process.platform}-\${process.arch}.dawn.node\`);
export { create, globals };
`,
);
const bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
console.error(
  `[bundle] ${Object.keys(result.metafile.outputs).length} files, ${(bytes / 2 ** 20).toFixed(1)} MiB`,
);
