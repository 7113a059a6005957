import * as tf from "@tensorflow/tfjs";
import {
  IOError,
  type Module,
  type RngState,
  loadTorchStateDict,
  tensorFromTorch,
  tensorToTorch,
  toTorchStateDict,
  torchShapeOf,
} from "@sit/core";
import type { RecipeState, TrainProgress } from "@sit/train";
import { type SitRecipe, createSiT } from "./sit";
import {
  type SitTorchArchitecture,
  sitArgsFromConfig,
  sitConfigFromArgs,
  sitTorchArchitecture,
} from "./sit-torch-args";

/**
 * "sit-torch": the whole SiT training state in the SiT code's PyTorch terms, as tensors (PyTorch
 * layouts) plus one JSON document. tools/scale-out packs it into the SiT code's `checkpoint.pth`
 * and back. Tensor names:
 * - `student.<key>` / `teacher.<key>`: keys of `FullPipline(backbone, head, head_recons)` inside
 *   DDP (`module.backbone.*` timm/DINO ViT names, `module.head.mlp.*`, `module.head_recons.*`),
 *   BatchNorm buffers included;
 * - `optimizer.state.<i>.exp_avg` / `.exp_avg_sq`: AdamW's moments, `i` as PyTorch numbers
 *   parameters in `optimizer.state_dict()`: the "regularized" group's, then "not regularized"'s,
 *   each in `named_parameters()` order.
 */
export const SIT_TORCH_FORMAT = "sit-torch";
export const SIT_TORCH_VERSION = 1;

/** One parameter group of PyTorch's `optimizer.state_dict()["param_groups"]` (our AdamW's settings). */
export interface TorchParamGroup {
  lr: number;
  betas: [number, number];
  eps: number;
  weight_decay: number;
  amsgrad: false;
  maximize: false;
  params: number[];
}

/** The JSON half of a sit-torch export. */
export interface SitTorchJson {
  format: typeof SIT_TORCH_FORMAT;
  version: number;
  /** Completed steps (PyTorch AdamW's `step` of every parameter). */
  step: number;
  /** Completed epochs (the SiT code's `epoch`: the epoch main.py resumes at). */
  epoch: number;
  /** Batches of `epoch` already done (main.py resumes at epoch boundaries only). */
  step_in_epoch: number;
  steps_per_epoch: number;
  optimizer: {
    state: Record<string, { step: number }>;
    param_groups: [TorchParamGroup, TorchParamGroup];
  };
  /** The SiT code's names of the two groups ({@link TORCH_GROUP_NAMES}); PyTorch's groups have none. */
  param_group_names: string[];
  /** `param_names[i]`: the student key of PyTorch's parameter index `i`. */
  param_names: string[];
  /** The run's config under the SiT code's argparse names. */
  args: Record<string, unknown>;
  architecture: SitTorchArchitecture;
  /** What the SiT code's main.py cannot represent of this run (empty: nothing). */
  official_differences: string[];
  /** SiT.js's own record (absent in an official checkpoint): exact config, progress, generators. */
  sitjs?: {
    config: unknown;
    progress: TrainProgress;
    rngs: Record<string, RngState>;
    /** The CLI's run description (dataset, normalisation), when the run came from `sit pretrain`. */
    cli?: unknown;
  };
}

/** Group names of the SiT code's `get_params_groups`, in order. */
export const TORCH_GROUP_NAMES = ["regularized", "not regularized"] as const;
// ModuleRecipe builds AdamW without `eps`: AdamW's default, PyTorch's.
const ADAMW_EPS = 1e-8;

const PREFIXES: [string, string][] = [
  ["backbone.", "module.backbone."],
  ["cls_head.", "module.head."],
  ["rec_head.", "module.head_recons."],
];

/** Our SiT network key → the SiT code's DDP key (`cls_head.mlp.0.weight` → `module.head.mlp.0.weight`). */
export function toOfficialKey(name: string): string {
  for (const [ours, theirs] of PREFIXES)
    if (name.startsWith(ours)) return theirs + name.slice(ours.length);
  throw new IOError(`sit-torch: ${JSON.stringify(name)} is not a SiT network key`);
}

/** The SiT code's DDP key → ours; a key outside `module.{backbone,head,head_recons}.` throws. */
export function fromOfficialKey(key: string): string {
  for (const [ours, theirs] of PREFIXES)
    if (key.startsWith(theirs)) return ours + key.slice(theirs.length);
  throw new IOError(
    `sit-torch: unexpected key ${JSON.stringify(key)} (expected module.backbone.*, module.head.* or module.head_recons.*)`,
  );
}

/** Our parameter names in PyTorch's optimizer numbering, and the size of the first group. */
function torchParamOrder(recipe: SitRecipe): { names: string[]; regularized: number } {
  const groups = recipe.optimizer.groups;
  if (groups.length !== 2 || groups[0].name !== "decay" || groups[1].name !== "no_decay")
    throw new IOError(
      `sit-torch: expected the optimiser groups decay, no_decay; got ${groups.map((g) => g.name).join(", ")}`,
    );
  // PyTorch numbers each group's parameters in named_parameters() order; our groups keep theirs
  // in their flat buffers' order, so the order comes from the network, the split from the groups.
  const decay = new Set(groups[0].params);
  const grouped = new Set([...groups[0].params, ...groups[1].params]);
  const all = recipe.student.namedParameters().map(([n]) => n);
  const names = [
    ...all.filter((n) => decay.has(n)),
    ...all.filter((n) => grouped.has(n) && !decay.has(n)),
  ];
  return { names, regularized: groups[0].params.length };
}

/**
 * The recipe's whole training state as sit-torch tensors (new tensors, PyTorch layouts: the
 * caller disposes them) and JSON. `progress` is where the run stands; `cli` is recorded as is.
 */
export function sitTorchState(
  recipe: SitRecipe,
  progress: TrainProgress,
  extra: { cli?: unknown; worldSize?: number } = {},
): { tensors: Record<string, tf.Tensor>; json: SitTorchJson } {
  // PyTorch's AdamW counts steps per parameter; the state only crosses over whole.
  if (recipe.optimizer.numSteps !== progress.step)
    throw new IOError(
      `sit-torch: the optimiser took ${recipe.optimizer.numSteps} steps but the run is at step ${progress.step}`,
    );
  const { args, differences } = sitArgsFromConfig(recipe.config, extra.worldSize ?? 1);
  const tensors: Record<string, tf.Tensor> = {};
  const nets: [string, Module][] = [
    ["student", recipe.student],
    ["teacher", recipe.teacher.module],
  ];
  for (const [who, net] of nets)
    for (const [k, t] of Object.entries(toTorchStateDict(net)))
      tensors[`${who}.${toOfficialKey(k)}`] = t;
  const { names, regularized } = torchParamOrder(recipe);
  const saved = recipe.saveState();
  const opt = saved.meta.optimizer as {
    step: number;
    groups: { lr: number; weightDecay: number }[];
  };
  const layouts = new Map(recipe.student.namedTorchLayouts());
  const state: Record<string, { step: number }> = {};
  names.forEach((name, i) => {
    // PyTorch keeps no state for a parameter before its first step.
    if (opt.step === 0) return;
    for (const m of ["exp_avg", "exp_avg_sq"])
      tensors[`optimizer.state.${i}.${m}`] = tensorToTorch(
        saved.tensors[`optim.${m}.${name}`],
        layouts.get(name),
      );
    state[String(i)] = { step: opt.step };
  });
  // saveState's moments are copies (the networks' tensors are the live ones).
  for (const [k, t] of Object.entries(saved.tensors)) if (k.startsWith("optim.")) t.dispose();
  const betas = recipe.config.optim.betas;
  const group = (g: number, params: number[]): TorchParamGroup => ({
    lr: opt.groups[g].lr,
    betas: [betas[0], betas[1]],
    eps: ADAMW_EPS,
    weight_decay: opt.groups[g].weightDecay,
    amsgrad: false,
    maximize: false,
    params,
  });
  const all = names.map((_, i) => i);
  const json: SitTorchJson = {
    format: SIT_TORCH_FORMAT,
    version: SIT_TORCH_VERSION,
    step: progress.step,
    epoch: progress.epoch,
    step_in_epoch: progress.stepInEpoch,
    steps_per_epoch: recipe.config.optim.stepsPerEpoch,
    optimizer: {
      state,
      param_groups: [group(0, all.slice(0, regularized)), group(1, all.slice(regularized))],
    },
    param_group_names: [...TORCH_GROUP_NAMES],
    param_names: names.map(toOfficialKey),
    args,
    architecture: sitTorchArchitecture(recipe.config),
    official_differences: differences,
    sitjs: {
      config: recipe.config,
      progress,
      rngs: saved.meta.rngs as Record<string, RngState>,
      ...(extra.cli !== undefined ? { cli: extra.cli } : {}),
    },
  };
  return { tensors, json };
}

function pick(tensors: Record<string, tf.Tensor>, prefix: string): Record<string, tf.Tensor> {
  const out: Record<string, tf.Tensor> = {};
  for (const [k, v] of Object.entries(tensors))
    if (k.startsWith(prefix)) out[fromOfficialKey(k.slice(prefix.length))] = v;
  return out;
}

/**
 * A SiT recipe holding a sit-torch state (student, teacher, AdamW moments, step and group
 * settings, generators when recorded), and where its run stands. Every name and shape is
 * checked: a missing, unexpected or mis-shaped tensor throws, naming it. `stepsPerEpoch` is
 * needed only without SiT.js's record (an official checkpoint) and then defaults to step/epoch.
 */
export function sitRecipeFromTorch(
  tensors: Record<string, tf.Tensor>,
  json: SitTorchJson,
  options: { stepsPerEpoch?: number } = {},
): { recipe: SitRecipe; progress: TrainProgress } {
  if (json?.format !== SIT_TORCH_FORMAT || json.version !== SIT_TORCH_VERSION)
    throw new IOError(
      `sit-torch: expected format "${SIT_TORCH_FORMAT}" version ${SIT_TORCH_VERSION}, got ${JSON.stringify(json?.format)} version ${JSON.stringify(json?.version)}`,
    );
  const known = /^(student|teacher)\.|^optimizer\.state\.\d+\.exp_avg(_sq)?$/;
  const stray = Object.keys(tensors).filter((k) => !known.test(k));
  if (stray.length > 0) throw new IOError(`sit-torch: unexpected tensors ${stray.join(", ")}`);
  const step = json.step;
  const spe = options.stepsPerEpoch ?? json.steps_per_epoch ?? stepsPerEpochOf(step, json.epoch);
  const config = json.sitjs?.config ?? sitConfigFromArgs(json.args, json.architecture, spe);
  const recipe = createSiT(config as Parameters<typeof createSiT>[0]);
  try {
    loadTorchStateDict(recipe.student, pick(tensors, "student."));
    loadTorchStateDict(recipe.teacher.module, pick(tensors, "teacher."));
    const { names, regularized } = torchParamOrder(recipe);
    const expected = names.map(toOfficialKey);
    const bad = expected.findIndex((n, i) => json.param_names?.[i] !== n);
    if (bad >= 0 || json.param_names.length !== expected.length)
      throw new IOError(
        `sit-torch: optimizer parameter ${bad >= 0 ? bad : expected.length} is ${JSON.stringify(json.param_names?.[bad >= 0 ? bad : expected.length])}, expected ${JSON.stringify(expected[bad] ?? "nothing")}`,
      );
    const groups = json.optimizer.param_groups;
    const sizes = [regularized, names.length - regularized];
    if (groups.length !== 2 || groups.some((g, i) => g.params.length !== sizes[i]))
      throw new IOError(
        `sit-torch: expected 2 parameter groups of ${sizes.join(" and ")} parameters, got ${groups.map((g) => g.params.length).join(" and ")}`,
      );
    const steps = new Set(Object.values(json.optimizer.state).map((s) => s.step));
    const optStep = Object.keys(json.optimizer.state).length === 0 ? 0 : [...steps][0];
    if (steps.size > 1 || optStep !== step)
      throw new IOError(
        `sit-torch: every parameter's AdamW step must equal the run's step ${step}; got ${[...steps].join(", ")}`,
      );
    const state = recipe.saveState();
    const layouts = new Map(recipe.student.namedTorchLayouts());
    const moments: Record<string, tf.Tensor> = {};
    names.forEach((name, i) => {
      for (const m of ["exp_avg", "exp_avg_sq"]) {
        const key = `optimizer.state.${i}.${m}`;
        const own = state.tensors[`optim.${m}.${name}`];
        const t = tensors[key];
        const shape = torchShapeOf(own.shape, layouts.get(name));
        if (step === 0 && !t) continue;
        if (!t || !tf.util.arraysEqual(t.shape, shape))
          throw new IOError(
            `sit-torch: ${key} (${expected[i]}): expected shape [${shape}], got ${t ? `[${t.shape}]` : "nothing"}`,
          );
        moments[`optim.${m}.${name}`] = tensorFromTorch(t, layouts.get(name));
      }
    });
    // saveState hands out the networks' own variables; loading a variable into itself breaks
    // tfjs, so the weights go back as copies (the generators and moments are why we load at all).
    const copies: Record<string, tf.Tensor> = {};
    for (const [k, t] of Object.entries(state.tensors))
      if (!k.startsWith("optim.")) copies[k] = t.clone();
    const restored: RecipeState = {
      tensors: { ...state.tensors, ...copies, ...moments },
      meta: {
        ...state.meta,
        optimizer: {
          step,
          groups: recipe.optimizer.groups.map((g, i) => ({
            ...g,
            lr: groups[i].lr,
            weightDecay: groups[i].weight_decay,
          })),
        },
        ...(json.sitjs?.rngs ? { rngs: json.sitjs.rngs } : {}),
      },
    };
    try {
      recipe.loadState(restored);
    } finally {
      for (const [k, t] of Object.entries(state.tensors)) if (k.startsWith("optim.")) t.dispose();
      tf.dispose([...Object.values(moments), ...Object.values(copies)]);
    }
    const batch = recipe.config.optim.batchSize;
    const perEpoch = recipe.config.optim.stepsPerEpoch;
    const progress: TrainProgress = {
      step,
      epoch: Math.floor(step / perEpoch),
      stepInEpoch: step % perEpoch,
      stepsPerEpoch: perEpoch,
      images: step * batch,
      elapsedSec: json.sitjs?.progress.elapsedSec ?? 0,
    };
    return { recipe, progress };
  } catch (err) {
    recipe.dispose();
    throw err;
  }
}

function stepsPerEpochOf(step: number, epoch: number): number {
  if (epoch > 0 && step > 0 && step % epoch === 0) return step / epoch;
  throw new IOError(
    `sit-torch: steps per epoch unknown (step ${step}, epoch ${epoch}); pass stepsPerEpoch (the data loader's length)`,
  );
}
