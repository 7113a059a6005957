import { VIT_PRESETS } from "@sit/vit";
import { RECIPES, resolveBackbone } from "@sit/recipes";
import { pretrainSchema } from "./run-config";

// Help texts read the defaults from the schemas that apply them (the CLI's own for the run, SiT's
// recipe schema for `config.*`), so that `--help` cannot drift from what a run does.

const runDefaults: Record<string, unknown> = pretrainSchema.parse({});
const sitDefaults: Record<string, unknown> = RECIPES.sit.schema.parse({
  optim: { stepsPerEpoch: 1 },
});

/** The default of a dotted `sit pretrain` config path (`config.*`: SiT's recipe), or undefined. */
export function pretrainDefault(path: string): unknown {
  const [root, ...rest] = path.split(".");
  let value: unknown = root === "config" ? sitDefaults : runDefaults[root];
  for (const key of rest) value = (value as Record<string, unknown> | undefined)?.[key];
  return value;
}

/** The ViT preset whose sizes SiT's default backbone has (what an unset `--preset` means). */
export function defaultPreset(): string | undefined {
  const b = resolveBackbone(
    (sitDefaults as { backbone: Parameters<typeof resolveBackbone>[0] }).backbone,
  );
  return Object.entries(VIT_PRESETS).find(
    ([, p]) => p.embedDim === b.embedDim && p.depth === b.depth && p.numHeads === b.numHeads,
  )?.[0];
}

/** A value as a person types it: `5e-4`, `0.2,1`, `imagenet`. */
export function formatDefault(value: unknown): string {
  if (Array.isArray(value)) return value.map(formatDefault).join(",");
  if (typeof value === "number" && value !== 0 && Math.abs(value) < 1e-3)
    return value.toExponential();
  return String(value);
}

/** `default X` for a `sit pretrain` config path, for help texts. */
export function defaultText(path: string): string {
  const value = pretrainDefault(path);
  if (value === undefined) throw new Error(`help: no default at ${path}`);
  return `default ${formatDefault(value)}`;
}
