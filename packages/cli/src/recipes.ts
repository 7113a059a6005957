import type { Module } from "@sit/core";
import { ConfigError } from "@sit/core";
import type { GmmlMasker } from "@sit/gmml";
import {
  type SitNetwork,
  createGmmlOnly,
  createMAE,
  createMoCoV3,
  createSiT,
  optimSchema,
} from "@sit/recipes";
import type { Recipe, RecipeState } from "@sit/train";
import { VisionTransformer } from "@sit/vit";
import { UsageError } from "./io";

/** Recipes the CLI can pretrain. */
export const RECIPE_NAMES = ["sit", "gmml", "mocov3", "mae"] as const;
export type RecipeName = (typeof RECIPE_NAMES)[number];

/** A recipe as the CLI uses it: @sit/train's contract plus the trained modules. */
export interface TrainedRecipe extends Recipe<unknown> {
  readonly student: Module;
  readonly config: Record<string, unknown> & { seed: number };
  dispose(): void;
}

const FACTORIES: Record<RecipeName, (config: Record<string, unknown>) => TrainedRecipe> = {
  sit: (c) => createSiT(c as never) as unknown as TrainedRecipe,
  gmml: (c) => createGmmlOnly(c as never) as unknown as TrainedRecipe,
  mocov3: (c) => createMoCoV3(c as never) as unknown as TrainedRecipe,
  mae: (c) => createMAE(c as never) as unknown as TrainedRecipe,
};

/** Whether `name` is a recipe the CLI knows. */
export function isRecipeName(name: unknown): name is RecipeName {
  return typeof name === "string" && (RECIPE_NAMES as readonly string[]).includes(name);
}

/** Build a recipe from its config; an invalid config is a usage error that names the field. */
export function createRecipe(name: string, config: Record<string, unknown>): TrainedRecipe {
  if (!isRecipeName(name))
    throw new UsageError(
      `recipe: expected one of ${RECIPE_NAMES.join(", ")}, got ${JSON.stringify(name)}`,
    );
  try {
    return FACTORIES[name](config);
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(err.message, { cause: err });
    throw err;
  }
}

/** The optimiser settings with their defaults filled (to read the batch size before building). */
export function optimDefaults(optim: unknown): { batchSize: number; epochs: number } {
  const parsed = optimSchema.safeParse({ ...(optim as object), stepsPerEpoch: 1 });
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw new UsageError(`config.optim.${i.path.join(".")}: ${i.message}`);
  }
  return { batchSize: parsed.data.batchSize, epochs: parsed.data.epochs };
}

/** Which copy of the network: the trained student or the EMA teacher (recipes that have one). */
export type WeightsChoice = "student" | "teacher";

function backboneIn(network: Module): VisionTransformer | undefined {
  const n = network as unknown as { backbone?: unknown; encoder?: { backbone?: unknown } };
  if (network instanceof VisionTransformer) return network;
  if (n.backbone instanceof VisionTransformer) return n.backbone;
  if (n.encoder?.backbone instanceof VisionTransformer) return n.encoder.backbone;
  return undefined;
}

/** The network (student or teacher) of a recipe and its ViT backbone. */
export function networkOf(
  recipe: TrainedRecipe,
  weights: WeightsChoice = "student",
): { network: Module; backbone: VisionTransformer } {
  const r = recipe as unknown as {
    teacherModule?: Module | null;
    teacher?: { module?: Module };
  };
  const network =
    weights === "student" ? recipe.student : (r.teacherModule ?? r.teacher?.module ?? null);
  if (!network)
    throw new UsageError(
      `--weights: recipe "${recipe.name}" has no teacher; use --weights student`,
    );
  const backbone = backboneIn(network);
  if (!backbone)
    throw new ConfigError(`recipe "${recipe.name}": its ${weights} network holds no ViT backbone`);
  return { network, backbone };
}

/** The SiT network with a reconstruction head and the GMML masker, for recipes that have both (sit, gmml). */
export function reconstructionParts(
  recipe: TrainedRecipe,
  weights: WeightsChoice = "student",
): { network: SitNetwork; masker: GmmlMasker } {
  const { network } = networkOf(recipe, weights);
  const masker = (recipe as unknown as { masker?: GmmlMasker }).masker;
  const net = network as SitNetwork;
  if (!net.recHead || !masker || typeof (masker as GmmlMasker).apply !== "function")
    throw new UsageError(
      `recipe "${recipe.name}" has no GMML reconstruction head (reconstruction pictures need the sit or gmml recipe)`,
    );
  return { network: net, masker };
}

/**
 * A recipe whose checkpoints also carry the CLI's run description under `meta.cli` (dataset,
 * normalisation, channels…), so that `sit reconstruct`, `sit knn` and the others need nothing
 * but the checkpoint file.
 */
export class RecipeWithRunInfo implements Recipe<unknown> {
  readonly name: string;
  constructor(
    readonly inner: TrainedRecipe,
    readonly runInfo: object,
  ) {
    this.name = inner.name;
  }
  get totalSteps(): number | undefined {
    return this.inner.totalSteps;
  }
  trainStep(batch: unknown, step: number) {
    return this.inner.trainStep(batch, step);
  }
  async saveState(): Promise<RecipeState> {
    const s = await this.inner.saveState();
    return { tensors: s.tensors, meta: { ...s.meta, cli: this.runInfo } };
  }
  loadState(state: RecipeState): void | Promise<void> {
    return this.inner.loadState(state);
  }
}
