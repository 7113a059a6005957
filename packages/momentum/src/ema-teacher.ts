import * as tf from "@tensorflow/tfjs";
import {
  ConfigError,
  type FlatSkipFlag,
  type Module,
  ShapeError,
  checkNumber,
  flatEmaKernel,
  invalidArgument,
  isHostBackend,
} from "@sit/core";

/** A teacher module, or a factory that builds one (same architecture as the student, drop path 0). */
export type TeacherSource<M extends Module> = M | (() => M);

function isModule(x: unknown): x is Module {
  return (
    typeof x === "object" &&
    x !== null &&
    typeof (x as Module).namedParameters === "function" &&
    typeof (x as Module).namedBuffers === "function"
  );
}

function describeMismatch(
  what: string,
  student: [string, tf.Variable][],
  teacher: [string, tf.Variable][],
): string | undefined {
  const s = new Map(student.map(([n, v]) => [n, v.shape]));
  const t = new Map(teacher.map(([n, v]) => [n, v.shape]));
  const problems: string[] = [];
  for (const [n, shape] of s) {
    const other = t.get(n);
    if (!other) problems.push(`teacher lacks ${what} ${n}`);
    else if (!tf.util.arraysEqual(shape, other))
      problems.push(`${n}: student [${shape.join(", ")}] vs teacher [${other.join(", ")}]`);
  }
  for (const n of t.keys()) if (!s.has(n)) problems.push(`student lacks ${what} ${n}`);
  if (problems.length === 0 && student.some(([n], i) => teacher[i][0] !== n))
    problems.push(`${what}s are registered in a different order`);
  return problems.length > 0
    ? problems.slice(0, 8).join("; ") + (problems.length > 8 ? "; …" : "")
    : undefined;
}

/**
 * The momentum (EMA) teacher of SiT v3 and MoCo/DINO (§6): a module of the student's architecture,
 * built by the caller (e.g. with drop path 0), initialised as an exact copy of the student
 * (parameters and buffers) and never trained; after every optimiser step, {@link EmaTeacher.update}
 * sets every parameter to `m·θ_teacher + (1 − m)·θ_student`. Buffers (BatchNorm running
 * statistics) are copied once and not averaged. The EmaTeacher owns the teacher module.
 */
export class EmaTeacher<M extends Module = Module> {
  /** The teacher network (its parameters are not trainable). */
  readonly module: M;
  private readonly names: string[];

  constructor(student: Module, teacher: TeacherSource<M>) {
    if (!isModule(student)) throw invalidArgument("student", student, "a Module");
    const built = typeof teacher === "function" ? teacher() : teacher;
    if (!isModule(built))
      throw invalidArgument("teacher", built, "a Module, or a function that returns one");
    if (built === student)
      throw new ConfigError(
        "teacher: expected a separate module of the same architecture, got the student itself",
      );
    const sp = student.namedParameters();
    const tp = built.namedParameters();
    const paramProblem = describeMismatch("parameter", sp, tp);
    const bufferProblem = describeMismatch("buffer", student.namedBuffers(), built.namedBuffers());
    if (paramProblem || bufferProblem)
      throw new ShapeError(
        `teacher: expected the student's architecture, but ${[paramProblem, bufferProblem].filter(Boolean).join("; ")}`,
      );
    this.module = built;
    this.names = sp.map(([n]) => n);
    // An exact copy: parameters and buffers. `assign` shares the student's current data (tfjs
    // tensors are immutable; later student updates assign new data and leave the teacher alone).
    tf.tidy(() => {
      for (let i = 0; i < tp.length; i++) tp[i][1].assign(sp[i][1]);
      const sb = student.namedBuffers();
      const tb = built.namedBuffers();
      for (let i = 0; i < tb.length; i++) tb[i][1].assign(sb[i][1]);
    });
    built.setTrainable(false);
  }

  /**
   * `θ_t ← m·θ_t + (1 − m)·θ_s` for every parameter, with `momentum` m in [0, 1]. Where a backend
   * package registered a fused EMA (`registerFlatEmaKernel`; @sit/kernels does for webgpu and
   * wasm) that one kernel; else on cpu/wasm a typed-array loop; elsewhere all parameters are
   * flattened into one buffer per network, updated with three element-wise ops, then split back.
   * `options.skip` (a flag on the device, e.g. a loss scale's found-inf) leaves the teacher as it
   * is when set, decided on the device; it needs a fused kernel that reads it (webgpu).
   */
  update(student: Module, momentum: number, options: { skip?: FlatSkipFlag } = {}): void {
    checkNumber("momentum", momentum, { min: 0, max: 1 });
    const { skip } = options;
    if (!isModule(student)) throw invalidArgument("student", student, "a Module");
    const sp = student.namedParameters();
    const tp = this.module.namedParameters();
    // An index loop: run every step over every parameter, it should make no garbage.
    let same = sp.length === this.names.length && tp.length === sp.length;
    for (let i = 0; same && i < sp.length; i++)
      same = sp[i][0] === this.names[i] && tf.util.arraysEqual(sp[i][1].shape, tp[i][1].shape);
    if (!same) {
      throw new ShapeError(
        `student: expected the architecture the teacher was built from, but ${describeMismatch("parameter", sp, tp) ?? "the parameters differ"}`,
      );
    }
    if (momentum === 1 || tp.length === 0) return;
    const fused = flatEmaKernel(tf.getBackend());
    if (skip && !fused?.skipFlag)
      throw new ConfigError(
        `EmaTeacher.update: options.skip (a flag on the device) needs a fused EMA kernel that reads it, and backend '${tf.getBackend()}' has none; decide on the host and do not call update for a skipped step`,
      );
    if (fused) {
      // A backend package registered a whole-network EMA (@sit/kernels: one dispatch over flat
      // buffers on webgpu, one loop inside the heap on wasm). It returns new tensors (the old
      // teacher data is released), or null where it updated the teacher's buffer in place.
      const next = fused(
        tp.map((e) => e[1]),
        sp.map((e) => e[1]),
        momentum,
        ...(skip ? [skip] : []),
      );
      next.forEach((t, i) => {
        if (!t) return;
        tp[i][1].assign(t);
        t.dispose();
      });
      return;
    }
    if (isHostBackend()) {
      // cpu/wasm keep tensors in host memory: one typed-array loop per parameter, no kernels.
      // (On wasm the flat path's final split of a whole network costs minutes: SplitV copies.)
      const a = Math.fround(momentum);
      const b = Math.fround(1 - momentum);
      for (let i = 0; i < tp.length; i++) {
        const t = tp[i][1];
        const td = t.dataSync() as Float32Array;
        const sd = sp[i][1].dataSync() as Float32Array;
        const out = new Float32Array(td.length);
        // Float32 rounding of each product, as PyTorch's `mul_(m).add_((1 - m) * θ_s)`.
        for (let j = 0; j < td.length; j++)
          out[j] = Math.fround(td[j] * a) + Math.fround(sd[j] * b);
        const next = tf.tensor(out, t.shape, "float32");
        t.assign(next);
        next.dispose();
      }
      return;
    }
    tf.tidy(() => {
      // Reshape is metadata-only, but still one engine call: skip it for 1-D tensors (biases, norms).
      const flat = (v: tf.Tensor): tf.Tensor => (v.rank === 1 ? v : tf.reshape(v, [-1]));
      const flatTeacher = tf.concat(tp.map(([, v]) => flat(v)));
      const flatStudent = tf.concat(sp.map(([, v]) => flat(v)));
      // The same float32 products as PyTorch's `mul_(m).add_((1 - m) * θ_s)`.
      const updated = tf.add(tf.mul(flatTeacher, momentum), tf.mul(flatStudent, 1 - momentum));
      const parts =
        tp.length === 1
          ? [updated]
          : tf.split(
              updated,
              tp.map(([, v]) => v.size),
            );
      for (let i = 0; i < tp.length; i++) {
        const v = tp[i][1];
        v.assign(v.rank === 1 ? parts[i] : tf.reshape(parts[i], v.shape));
      }
    });
  }

  /** Release the teacher module's variables. */
  dispose(): void {
    this.module.dispose();
  }
}
