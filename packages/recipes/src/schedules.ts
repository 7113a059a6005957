import { cosineSchedule } from "@sit/core";
import type { OptimConfig } from "./config";

/** Per-iteration learning-rate and weight-decay schedules of SiT/DINO from an optimiser config. */
export interface OptimSchedules {
  lr: Float64Array;
  wd: Float64Array;
  totalSteps: number;
}

export function optimSchedules(o: OptimConfig): OptimSchedules {
  const totalSteps = o.epochs * o.stepsPerEpoch;
  const base = (o.baseLr * o.batchSize) / 256;
  const warmupSteps = Math.min(o.warmupEpochs * o.stepsPerEpoch, totalSteps - 1);
  return {
    lr: cosineSchedule({ base, final: o.minLr, totalSteps, warmupSteps, warmupStart: 0 }),
    wd: cosineSchedule({ base: o.weightDecay, final: o.weightDecayEnd, totalSteps }),
    totalSteps,
  };
}

/** The schedule value at `step`; past the planned end, the last value. */
export function at(schedule: Float64Array, step: number): number {
  return schedule[Math.min(step, schedule.length - 1)];
}
