import type * as tf from "@tensorflow/tfjs";
import { ConfigError, checkNumber, describeValue, invalidArgument } from "../errors";
import { Module } from "../nn/module";

/** Named parameters, as `Module.namedParameters()` returns them. */
export type NamedParameters = [string, tf.Variable][];

/** An explicit parameter group of {@link AdamW}. */
export interface ParamGroupSpec {
  /** Name used in state and errors (default `group<i>`). */
  name?: string;
  params: NamedParameters;
  /** Weight decay of this group (default: the optimiser's `weightDecay`). */
  weightDecay?: number;
  /**
   * Multiplies every learning rate set with `setLr` for this group (default 1), e.g. layer-wise
   * learning-rate decay when fine-tuning.
   */
  lrScale?: number;
  /**
   * Whether `setWeightDecay(value)` without a group name changes this group (default: true when
   * its weight decay is non-zero), as SiT/DINO schedule the decay of group 0 only. The automatic
   * groups schedule `decay` and never `no_decay`.
   */
  scheduleWeightDecay?: boolean;
}

/**
 * The usual no-decay rule (SiT/DINO `get_params_groups`): 1-D tensors (biases, norm scales) and
 * names ending in `.bias` get no weight decay; everything else, including the 3-D `pos_embed`
 * and `cls_token`, is decayed.
 */
export function defaultNoDecay(name: string, param: tf.Variable): boolean {
  return param.rank <= 1 || name.endsWith(".bias");
}

function isNamedParameters(x: unknown): x is NamedParameters {
  return (
    Array.isArray(x) &&
    x.every((e) => Array.isArray(e) && e.length === 2 && typeof e[0] === "string")
  );
}

/**
 * Resolve the first argument of the AdamW constructor into explicit groups:
 * a Module or a list of named parameters becomes SiT's two groups `decay` and `no_decay`
 * (only trainable parameters); a list of {@link ParamGroupSpec} is used as given.
 */
export function resolveParamGroups(
  params: Module | NamedParameters | ParamGroupSpec[],
  weightDecay: number,
  noDecay: (name: string, param: tf.Variable) => boolean,
): Required<ParamGroupSpec>[] {
  let specs: ParamGroupSpec[];
  if (params instanceof Module || isNamedParameters(params)) {
    const named = (params instanceof Module ? params.namedParameters() : params).filter(
      ([, p]) => p.trainable,
    );
    specs = [
      {
        name: "decay",
        params: named.filter(([n, p]) => !noDecay(n, p)),
        scheduleWeightDecay: true,
      },
      {
        name: "no_decay",
        params: named.filter(([n, p]) => noDecay(n, p)),
        weightDecay: 0,
        scheduleWeightDecay: false,
      },
    ];
  } else if (
    Array.isArray(params) &&
    params.length > 0 &&
    params.every((g) => g && "params" in g)
  ) {
    specs = params;
  } else {
    throw invalidArgument(
      "params",
      params,
      "a Module, a list of [name, Variable] pairs, or a non-empty list of { params, weightDecay?, lrScale? } groups",
    );
  }
  const seen = new Map<string, string>();
  return specs.map((g, i) => {
    const name = g.name ?? `group${i}`;
    if (!isNamedParameters(g.params))
      throw invalidArgument(`groups[${i}].params`, g.params, "a list of [name, Variable] pairs");
    for (const [n] of g.params) {
      const other = seen.get(n);
      if (other !== undefined)
        throw new ConfigError(
          `params: parameter ${describeValue(n)} is in two groups (${other} and ${name})`,
        );
      seen.set(n, name);
    }
    const wd = checkNumber(`groups[${i}].weightDecay`, g.weightDecay ?? weightDecay, { min: 0 });
    return {
      name,
      params: g.params,
      weightDecay: wd,
      lrScale: checkNumber(`groups[${i}].lrScale`, g.lrScale ?? 1, { min: 0 }),
      scheduleWeightDecay: g.scheduleWeightDecay ?? wd !== 0,
    };
  });
}
