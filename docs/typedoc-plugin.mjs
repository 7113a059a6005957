// TypeDoc plugin: name each entry point's module after its package
// (`packages/core/src/index.ts`, shown by default as "core/src", becomes "@sit/core").
import { Converter } from "typedoc";

/** @param {import("typedoc").Application} app */
export function load(app) {
  app.converter.on(Converter.EVENT_RESOLVE_BEGIN, (context) => {
    for (const mod of context.project.children ?? []) {
      const m = /^([\w-]+)\/src$/.exec(mod.name);
      if (m) mod.name = `@sit/${m[1]}`;
    }
  });
}
