// TypeDoc plugin: name each entry point's module after its package
// (`packages/core/src/index.ts`, shown by default as "core/src" or "core/src/index", becomes
// "@sit/core"; `packages/core/src/node.ts`, "core/src/node", becomes "@sit/core/node").
import { Converter } from "typedoc";

/** @param {import("typedoc").Application} app */
export function load(app) {
  app.converter.on(Converter.EVENT_RESOLVE_BEGIN, (context) => {
    for (const mod of context.project.children ?? []) {
      const m = /^([\w-]+)\/src(?:\/(index|node))?$/.exec(mod.name);
      if (m) mod.name = m[2] === "node" ? `@sit/${m[1]}/node` : `@sit/${m[1]}`;
    }
  });
}
