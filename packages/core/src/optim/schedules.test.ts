import { loadSchedules } from "@sit/testing";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../errors";
import { cosineSchedule, cosineScheduleAt } from "./schedules";

interface Entry {
  args: {
    base: number;
    final: number;
    epochs: number;
    iters_per_epoch: number;
    warmup_epochs: number;
  };
  values: number[];
}

describe("cosineSchedule", () => {
  const fixture = loadSchedules() as Record<string, Entry>;
  for (const name of ["lr", "wd", "momentum"]) {
    it(`reproduces every value of schedules.json "${name}"`, () => {
      const { args, values } = fixture[name];
      const options = {
        base: args.base,
        final: args.final,
        totalSteps: args.epochs * args.iters_per_epoch,
        warmupSteps: args.warmup_epochs * args.iters_per_epoch,
      };
      const got = cosineSchedule(options);
      expect(got.length).toBe(values.length);
      for (let i = 0; i < values.length; i++) {
        const err = Math.abs(got[i] - values[i]) / Math.max(Math.abs(values[i]), 1e-300);
        expect(err, `${name}[${i}]: ${got[i]} vs ${values[i]}`).toBeLessThanOrEqual(1e-12);
        expect(cosineScheduleAt(i, options)).toBe(got[i]);
      }
    });
  }

  it("starts the warm-up at warmupStart", () => {
    const s = cosineSchedule({
      base: 1,
      final: 0,
      totalSteps: 10,
      warmupSteps: 4,
      warmupStart: 0.2,
    });
    expect(s[0]).toBe(0.2);
    expect(s[2]).toBeCloseTo(0.6, 15);
    expect(s[4]).toBe(1);
  });

  it("rejects non-finite or inconsistent arguments", () => {
    expect(() => cosineSchedule({ base: Number.NaN, final: 0, totalSteps: 5 })).toThrow(
      /base: expected a finite number, got NaN/,
    );
    expect(() => cosineSchedule({ base: 1, final: 0, totalSteps: 5, warmupSteps: 5 })).toThrow(
      ConfigError,
    );
    expect(() => cosineSchedule({ base: 1, final: 0, totalSteps: 0 })).toThrow(/totalSteps/);
    expect(() => cosineScheduleAt(-1, { base: 1, final: 0, totalSteps: 5 })).toThrow(/step/);
  });
});
