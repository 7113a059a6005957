// Wall-clock phases of one recipe step, measured by wrapping the recipe's parts in place: data
// (GMML corruption), teacher forward, student forward (incl. losses' inputs), backward (the rest of
// the gradient computation), optimiser (clipping + AdamW) and EMA. On cpu/wasm every kernel runs
// synchronously, so wall time is the phase's cost; on webgpu it is host (encoding) time only.
import type { Module } from "../../packages/core/src/index";

export const PHASES = [
  "data",
  "teacher_forward",
  "student_forward",
  "backward",
  "optimizer",
  "ema",
] as const;
export type PhaseName = (typeof PHASES)[number];

interface Instrumentable {
  student: Module & { forward: (...a: never[]) => unknown };
  teacherModule: (Module & { forward: (...a: never[]) => unknown }) | null;
  optimizer: { step: (...a: never[]) => unknown };
  masker?: { apply?: (...a: never[]) => unknown; plan?: (...a: never[]) => unknown };
  teacher?: { update: (...a: never[]) => unknown };
}

/** Per-phase milliseconds summed over the steps since the last `reset()`. */
export class PhaseTimer {
  readonly ms: Record<PhaseName | "step", number> = {
    data: 0,
    teacher_forward: 0,
    student_forward: 0,
    backward: 0,
    optimizer: 0,
    ema: 0,
    step: 0,
  };
  steps = 0;

  reset(): void {
    for (const k of Object.keys(this.ms)) this.ms[k as PhaseName] = 0;
    this.steps = 0;
  }

  /** Mean milliseconds per step and phase; `backward` is the step's time not in any other phase. */
  perStep(): Record<PhaseName | "step", number> {
    const n = Math.max(1, this.steps);
    const out = {} as Record<PhaseName | "step", number>;
    const named = PHASES.filter((p) => p !== "backward").reduce((s, p) => s + this.ms[p], 0);
    for (const k of Object.keys(this.ms) as (PhaseName | "step")[])
      out[k] = Math.round((this.ms[k] / n) * 10) / 10;
    out.backward = Math.round(((this.ms.step - named) / n) * 10) / 10;
    return out;
  }
}

// biome-ignore lint/suspicious/noExplicitAny: wraps arbitrary methods in place
function wrap(obj: any, method: string, add: (ms: number) => void): void {
  if (!obj || typeof obj[method] !== "function") return;
  const original = obj[method].bind(obj);
  obj[method] = (...args: unknown[]) => {
    const t0 = performance.now();
    try {
      return original(...args);
    } finally {
      add(performance.now() - t0);
    }
  };
}

/**
 * Wrap a recipe's student/teacher forward, optimiser step, EMA update and GMML masker so that a
 * {@link PhaseTimer} sees each phase; `timeStep` times one whole step. "backward" is what remains.
 */
export function instrumentPhases(recipe: Instrumentable): {
  timer: PhaseTimer;
  timeStep: <T>(f: () => Promise<T>) => Promise<T>;
} {
  const timer = new PhaseTimer();
  const parts: [unknown, string, PhaseName][] = [
    [recipe.student, "forward", "student_forward"],
    [recipe.teacherModule, "forward", "teacher_forward"],
    [recipe.optimizer, "step", "optimizer"],
    [recipe.teacher, "update", "ema"],
    [recipe.masker, "apply", "data"],
    [recipe.masker, "plan", "data"],
  ];
  for (const [obj, method, phase] of parts)
    wrap(obj, method, (ms) => {
      timer.ms[phase] += ms;
    });
  return {
    timer,
    timeStep: async (f) => {
      const t0 = performance.now();
      try {
        return await f();
      } finally {
        timer.ms.step += performance.now() - t0;
        timer.steps++;
      }
    },
  };
}
