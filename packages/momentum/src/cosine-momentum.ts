import { ConfigError, checkNumber } from "@sit/core";

/** {@link cosineMomentum}'s defaults: SiT v3's (and DINO's) teacher momentum, from 0.996 to 1. */
export const MOMENTUM_DEFAULTS = { base: 0.996, final: 1 } as const;

/** Options of {@link cosineMomentum}; defaults are SiT v3's ({@link MOMENTUM_DEFAULTS}). */
export interface CosineMomentumOptions {
  /** Momentum at step 0 (default 0.996). */
  base?: number;
  /** Momentum approached at the last step (default 1). */
  final?: number;
  /** Number of optimiser steps I = epochs × iterations per epoch. */
  totalSteps: number;
}

/** A per-iteration momentum schedule: step → m. */
export type MomentumSchedule = (step: number) => number;

/**
 * The teacher-momentum schedule of SiT v3 / DINO, per iteration, no warm-up:
 * `m(i) = final + 0.5·(base − final)·(1 + cos(π·i/I))` for i in [0, I) (so m(0) = base, rising
 * towards `final`). Steps at or past I return `final` (a run extended beyond its plan).
 */
export function cosineMomentum(options: CosineMomentumOptions): MomentumSchedule {
  if (typeof options !== "object" || options === null)
    throw new ConfigError(
      "options: expected { base?, final?, totalSteps }, got " + String(options),
    );
  const base = checkNumber("base", options.base ?? MOMENTUM_DEFAULTS.base, { min: 0, max: 1 });
  const final = checkNumber("final", options.final ?? MOMENTUM_DEFAULTS.final, { min: 0, max: 1 });
  const totalSteps = checkNumber("totalSteps", options.totalSteps, { min: 1, integer: true });
  return (step: number): number => {
    checkNumber("step", step, { min: 0, integer: true });
    if (step >= totalSteps) return final;
    return final + 0.5 * (base - final) * (1 + Math.cos((Math.PI * step) / totalSteps));
  };
}
