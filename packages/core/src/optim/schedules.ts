import { ConfigError, checkNumber } from "../errors";

/** Options of {@link cosineSchedule}: a per-iteration value, as DINO's/SiT's `cosine_scheduler`. */
export interface CosineScheduleOptions {
  /** Value at the end of warm-up (the start of the cosine). */
  base: number;
  /** Value the cosine approaches at the last step. */
  final: number;
  /** Number of steps in the whole schedule (epochs × iterations per epoch). */
  totalSteps: number;
  /** Linear warm-up steps before the cosine (default 0). */
  warmupSteps?: number;
  /** Value at step 0 of the warm-up (default 0). */
  warmupStart?: number;
}

function validate(o: CosineScheduleOptions): Required<CosineScheduleOptions> {
  if (o === null || typeof o !== "object")
    throw new ConfigError(
      `options: expected { base, final, totalSteps, warmupSteps?, warmupStart? }, got ${String(o)}`,
    );
  const totalSteps = checkNumber("totalSteps", o.totalSteps, { integer: true, min: 1 });
  const warmupSteps = checkNumber("warmupSteps", o.warmupSteps ?? 0, {
    integer: true,
    min: 0,
    max: totalSteps - 1,
  });
  return {
    base: checkNumber("base", o.base),
    final: checkNumber("final", o.final),
    totalSteps,
    warmupSteps,
    warmupStart: checkNumber("warmupStart", o.warmupStart ?? 0),
  };
}

function valueAt(step: number, o: Required<CosineScheduleOptions>): number {
  const { base, final, totalSteps, warmupSteps: w, warmupStart } = o;
  if (step < w) return warmupStart + ((base - warmupStart) * step) / w;
  const t = step - w;
  const span = totalSteps - w;
  // Same evaluation order as numpy in cosine_scheduler, so values agree to the last bit or two.
  return final + 0.5 * (base - final) * (1 + Math.cos((Math.PI * t) / span));
}

/**
 * The value of a warm-up + cosine schedule at `step` (0-based):
 * linear from `warmupStart` to `base` over `warmupSteps` steps (`warmupStart + (base −
 * warmupStart)·i/W`), then `final + ½(base − final)(1 + cos(π·t/T))` with `t = step − W` and
 * `T = totalSteps − W`. Steps past the end keep following the cosine formula.
 */
export function cosineScheduleAt(step: number, options: CosineScheduleOptions): number {
  checkNumber("step", step, { integer: true, min: 0 });
  return valueAt(step, validate(options));
}

/**
 * Every step's value of a warm-up + cosine schedule (see {@link cosineScheduleAt}), as SiT/DINO
 * precompute their learning-rate, weight-decay and teacher-momentum schedules.
 */
export function cosineSchedule(options: CosineScheduleOptions): Float64Array {
  const o = validate(options);
  const out = new Float64Array(o.totalSteps);
  for (let i = 0; i < o.totalSteps; i++) out[i] = valueAt(i, o);
  return out;
}
