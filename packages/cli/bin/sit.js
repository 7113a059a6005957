#!/usr/bin/env node
// The `sit` executable. It sits outside dist/ so that `npm install` / `npm ci` can link it before
// the first build: npm links no bin whose file is missing, and `npx sit` in a fresh clone would
// then run an unrelated registry package called `sit`. It runs the built CLI, or says what to do.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const built = new URL("../dist/bin.js", import.meta.url);
if (existsSync(fileURLToPath(built))) await import(built.href);
else {
  process.stderr.write(
    "sit: @sit/cli is not built. In a clone of SiT.js run `npm run build` first, " +
      "or `npm run sit -- <command>`, which runs the CLI from its sources.\n",
  );
  process.exitCode = 1;
}
