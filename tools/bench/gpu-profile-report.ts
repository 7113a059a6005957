// The `gpu_profile` object of tools/bench/sit_step.ts's report (--gpu-profile): a GPU profile
// (packages/kernels/src/webgpu/gpu-profile.ts) of one step, rounded and cut to its largest groups.
import type { GpuProfile } from "../../packages/kernels/src/webgpu/gpu-profile";

const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

/** `gpu_profile` of the report: the profiled step's totals and its shader keys by GPU time. */
export function gpuProfileReport(p: GpuProfile, stepMs: number): Record<string, unknown> {
  if (!p.available) return { available: false, reason: p.reason, step_ms: round(stepMs) };
  const TOP = 40;
  // The first 40 groups (all if ≤ 40) and the rest summed.
  const listed = (groups: GpuProfile["byKey"]) => {
    const shown = groups.slice(0, TOP);
    const rest = groups.slice(TOP);
    return {
      top: shown.map((g) => ({
        key: g.key,
        count: g.count,
        total_ms: round(g.totalMs, 3),
        mean_us: round(g.meanUs, 1),
        share: round(g.share, 4),
        workgroups: g.workgroups,
      })),
      ...(rest.length
        ? {
            rest: {
              groups: rest.length,
              count: rest.reduce((n, g) => n + g.count, 0),
              total_ms: round(
                rest.reduce((n, g) => n + g.totalMs, 0),
                3,
              ),
            },
          }
        : {}),
    };
  };
  const byKey = listed(p.byKey);
  const byShape = listed(p.byShape);
  return {
    available: true,
    dispatches_timed: p.dispatches,
    direct_timed: p.direct,
    tfjs_programs_timed: p.tfjsPrograms,
    untimed: p.untimed,
    dropped: p.dropped,
    invalid: p.invalid,
    sum_ms: round(p.sumMs, 3),
    step_ms: round(stepMs),
    timer_granularity_ns: p.granularityNs,
    keys: p.byKey.length,
    top: byKey.top,
    ...(byKey.rest ? { rest: byKey.rest } : {}),
    shapes: p.byShape.length,
    top_shapes: byShape.top,
    ...(byShape.rest ? { rest_shapes: byShape.rest } : {}),
    note: "GPU time per dispatch from timestamps at the beginning and end of its own compute pass (gaps between dispatches excluded); top = per shader key (workgroups: its first 4 distinct workgroup counts), top_shapes = per shader key and workgroup count; sum_ms over the valid timed dispatches; step_ms = wall time of this profiled step (one pass per dispatch); untimed = dispatches recorded outside encode() and tfjs's programs (dispatchAll), or tfjs programs under tf.profile; timer_granularity_ns = the largest power of two dividing every timestamp: thousands of ns mean quantised timestamps (Dawn's timestamp_quantization toggle), so short dispatches are coarse.",
  };
}
