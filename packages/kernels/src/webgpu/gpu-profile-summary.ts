// The pure half of the GPU profile (gpu-profile.ts records; this turns timestamps into a
// profile): shader labels, timestamp pairs → per-dispatch times, sums per shader key and per key
// and workgroup count. No GPU here, so it is tested on hand-made timestamps.

/** One timed dispatch: its shader key (`tfjs:<program class>` for tfjs's programs). */
export interface GpuDispatchTime {
  key: string;
  workgroups: [number, number, number];
  /** GPU time (ms); NaN when the driver's timestamps were unusable (end before beginning). */
  ms: number;
}

/** The dispatches of one shader key. */
export interface GpuKeyTime {
  key: string;
  count: number;
  totalMs: number;
  meanUs: number;
  /** Of the sum over all valid timed dispatches. */
  share: number;
  /** Distinct workgroup counts (x×y×z), the first 4. */
  workgroups: string[];
}

export interface GpuProfile {
  available: boolean;
  /** Why nothing was timed (available: false). */
  reason?: string;
  /** Dispatches timed, valid or not (direct + tfjs programs). */
  dispatches: number;
  /** Timed dispatches recorded by encode() and by tfjs's programs. */
  direct: number;
  tfjsPrograms: number;
  /** Timed, but the end timestamp preceded the beginning (some drivers): left out of the sums. */
  invalid: number;
  /** Dispatches past the capacity, recorded untimed. */
  dropped: number;
  /** Dispatches not timed: this package's `dispatchAll`, and tfjs programs under tf.time/profile. */
  untimed: number;
  /** Sum of the valid timed dispatches' GPU time (ms). */
  sumMs: number;
  /** Largest power of two dividing every timestamp (ns): a coarse value means quantised timers. */
  granularityNs: number;
  /** Per shader key, most total time first. */
  byKey: GpuKeyTime[];
  /**
   * Per shader key and workgroup count (one shape of a GEMM key, say; `workgroups` has one
   * entry), most total time first.
   */
  byShape: GpuKeyTime[];
  /** Every timed dispatch, in recording order. */
  times: GpuDispatchTime[];
}

/**
 * `tfjs:` and the class of a tfjs program (BinaryOpProgram, …), or for this package's programs
 * (program.ts: plain objects) their shader key, without what tfjs's makeShaderKey appended to it
 * before recordAndSubmit: `_`, the workgroup size and input ranks (digits and commas), then dtypes.
 */
export function programLabel(program: {
  constructor?: { name?: string };
  shaderKey?: unknown;
}): string {
  const name = program?.constructor?.name;
  if (name && name !== "Object") return `tfjs:${name}`;
  const key = typeof program?.shaderKey === "string" ? program.shaderKey : "program";
  const suffix = /_[\d,]*\d(float32|int32|bool|complex64|string)/.exec(key);
  return `tfjs:${suffix ? key.slice(0, suffix.index) : key}`;
}

/** Valid timed dispatches grouped by `by`, most total time first (shares of `sumNs`). */
function groupTimes(
  valid: { key: string; wg: string; ns: number }[],
  sumNs: number,
  by: (d: { key: string; wg: string }) => string,
): GpuKeyTime[] {
  const groups = new Map<string, { key: string; count: number; ns: number; wg: Set<string> }>();
  for (const d of valid) {
    const id = by(d);
    let g = groups.get(id);
    if (!g) {
      g = { key: d.key, count: 0, ns: 0, wg: new Set() };
      groups.set(id, g);
    }
    g.count++;
    g.ns += d.ns;
    if (g.wg.size < 4) g.wg.add(d.wg);
  }
  return [...groups.values()]
    .map((g) => ({
      key: g.key,
      count: g.count,
      totalMs: g.ns / 1e6,
      meanUs: g.ns / g.count / 1e3,
      share: sumNs > 0 ? g.ns / sumNs : 0,
      workgroups: [...g.wg],
    }))
    .sort((x, y) => y.totalMs - x.totalMs);
}

/**
 * Per-dispatch times and the per-key summary from the raw timestamps (`stamps[2i]`, `[2i + 1]`:
 * the beginning and end of dispatch i, in ns). A pair whose end precedes its beginning (drivers
 * can reorder) or that was never written (both 0) counts as invalid and stays out of the sums.
 */
export function summariseTimestamps(
  keys: string[],
  workgroups: [number, number, number][],
  stamps: BigInt64Array,
): Omit<GpuProfile, "direct" | "tfjsPrograms" | "dropped" | "untimed"> {
  if (stamps.length !== keys.length * 2)
    throw new Error(
      `summariseTimestamps: expected ${keys.length * 2} timestamps (2 per dispatch), got ${stamps.length}`,
    );
  const times: GpuDispatchTime[] = [];
  const valid: { key: string; wg: string; ns: number }[] = [];
  let sumNs = 0;
  let bits = 0n;
  keys.forEach((key, i) => {
    const begin = stamps[2 * i];
    const end = stamps[2 * i + 1];
    const ok = end >= begin && !(begin === 0n && end === 0n);
    const ns = ok ? Number(end - begin) : Number.NaN;
    times.push({ key, workgroups: workgroups[i], ms: ns / 1e6 });
    if (!ok) return;
    bits |= begin | end;
    sumNs += ns;
    valid.push({ key, wg: workgroups[i].join("×"), ns });
  });
  let granularity = 1;
  if (bits === 0n) granularity = 0;
  else while ((bits & BigInt(granularity)) === 0n && granularity < 2 ** 52) granularity *= 2;
  return {
    available: true,
    dispatches: keys.length,
    invalid: keys.length - valid.length,
    sumMs: sumNs / 1e6,
    granularityNs: granularity,
    byKey: groupTimes(valid, sumNs, (d) => d.key),
    byShape: groupTimes(valid, sumNs, (d) => `${d.key} ${d.wg}`),
    times,
  };
}
