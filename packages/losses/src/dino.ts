import * as tf from "@tensorflow/tfjs";
import { ShapeError, checkNumber, invalidArgument } from "@sit/core";
import { checkFloatTensor } from "./checks";
import { stopGradient } from "./ops";

/**
 * DINO's loss settings (Caron et al. 2021, "Emerging Properties in Self-Supervised Vision
 * Transformers", main_dino.py defaults): student temperature 0.1, teacher temperature 0.04 with
 * an optional linear warm-up from `warmupTeacherTemperature` (the paper's ViT-S/16 runs use
 * 0.04 → 0.07 over 30 epochs), centre momentum 0.9.
 */
export const DINO_LOSS_DEFAULTS = {
  studentTemperature: 0.1,
  teacherTemperature: 0.04,
  warmupTeacherTemperature: 0.04,
  centerMomentum: 0.9,
} as const;

/** Options of {@link dinoLoss}. */
export interface DinoLossOptions {
  /** Global crops (teacher rows `[nGlobal·B, K]`, the first `nGlobal·B` student rows). Default 2. */
  nGlobal?: number;
  /** τs (default 0.1). */
  studentTemperature?: number;
  /** τt of this step (default 0.04; see {@link teacherTemperatureAt}). */
  teacherTemperature?: number;
}

/**
 * DINO's multi-crop cross-entropy. `student` `[nCrops·B, K]` and `teacher` `[nGlobal·B, K]` are
 * head outputs in crop-major blocks of B rows (globals first); `center` `[1, K]` or `[K]`. Mean
 * over the pairs (teacher global i, student crop j ≠ i) of the batch mean of
 * `Σₖ −softmax((tᵢ − c)/τt)ₖ · log_softmax(sⱼ/τs)ₖ`. The teacher side is detached.
 */
export function dinoLoss(
  student: tf.Tensor,
  teacher: tf.Tensor,
  center: tf.Tensor,
  options: DinoLossOptions = {},
): tf.Scalar {
  const nGlobal = checkNumber("nGlobal", options.nGlobal ?? 2, { integer: true, min: 1 });
  const tauS = checkNumber(
    "studentTemperature",
    options.studentTemperature ?? DINO_LOSS_DEFAULTS.studentTemperature,
    { min: 0, minExclusive: true },
  );
  const tauT = checkNumber(
    "teacherTemperature",
    options.teacherTemperature ?? DINO_LOSS_DEFAULTS.teacherTemperature,
    { min: 0, minExclusive: true },
  );
  checkFloatTensor("student", student, 2, "[nCrops·B, K]");
  checkFloatTensor("teacher", teacher, 2, "[nGlobal·B, K]");
  const [rowsT, K] = teacher.shape;
  if (rowsT % nGlobal !== 0)
    throw new ShapeError(
      `teacher: expected nGlobal (${nGlobal}) blocks of B rows, got ${rowsT} rows`,
    );
  const B = rowsT / nGlobal;
  const [rowsS, KS] = student.shape;
  if (KS !== K || rowsS % B !== 0 || rowsS / B < nGlobal)
    throw new ShapeError(
      `student: expected [nCrops·${B}, ${K}] with nCrops ≥ ${nGlobal} (teacher is [${teacher.shape}]), got [${student.shape}]`,
    );
  checkCenter(center, K);
  const nCrops = rowsS / B;
  if (nCrops < 2)
    throw new ShapeError(`student: expected at least 2 crops (a pair to compare), got ${nCrops}`);
  return tf.tidy(() => {
    const c = tf.reshape(center, [1, K]);
    const t = tf.softmax(tf.div(tf.sub(stopGradient(teacher), c), tauT)) as tf.Tensor2D;
    const logS = tf.logSoftmax(tf.div(student, tauS)) as tf.Tensor2D;
    const block = (x: tf.Tensor2D, i: number) => tf.slice(x, [i * B, 0], [B, K]);
    let total: tf.Tensor = tf.scalar(0);
    let pairs = 0;
    for (let i = 0; i < nGlobal; i++)
      for (let j = 0; j < nCrops; j++) {
        if (j === i) continue; // a crop is not compared with itself
        const ce = tf.neg(tf.sum(tf.mul(block(t, i), block(logS, j)), 1));
        total = tf.add(total, tf.mean(ce));
        pairs++;
      }
    return tf.div(total, pairs) as tf.Scalar;
  });
}

function checkCenter(center: tf.Tensor, K: number): void {
  if (!(center instanceof tf.Tensor) || center.dtype !== "float32" || center.size !== K)
    throw invalidArgument(
      "center",
      center instanceof tf.Tensor ? `tensor [${center.shape}]` : center,
      `a float32 tensor of ${K} values ([1, ${K}] or [${K}])`,
    );
}

/**
 * DINO's centre update: `m·center + (1 − m)·mean(teacher rows)`, over every global crop of the
 * batch (a new tensor shaped like `center`; no gradient flows).
 */
export function updatedCenter(center: tf.Tensor, teacher: tf.Tensor, momentum: number): tf.Tensor {
  checkNumber("momentum", momentum, { min: 0, max: 1 });
  checkFloatTensor("teacher", teacher, 2, "[rows, K]");
  checkCenter(center, teacher.shape[1] as number);
  return tf.tidy(() => {
    const mean = tf.reshape(tf.mean(teacher, 0), [...center.shape]);
    return tf.add(tf.mul(center, momentum), tf.mul(mean, 1 - momentum));
  });
}

/**
 * DINO's teacher-temperature schedule: linear from `warmup` to `final` over `warmupSteps`, then
 * `final` (DINO counts the warm-up in epochs: pass epochs × steps per epoch).
 */
export function teacherTemperatureAt(
  step: number,
  options: { warmup?: number; final?: number; warmupSteps?: number } = {},
): number {
  checkNumber("step", step, { integer: true, min: 0 });
  const warmup = checkNumber(
    "warmup",
    options.warmup ?? DINO_LOSS_DEFAULTS.warmupTeacherTemperature,
    { min: 0, minExclusive: true },
  );
  const final = checkNumber("final", options.final ?? DINO_LOSS_DEFAULTS.teacherTemperature, {
    min: 0,
    minExclusive: true,
  });
  const n = checkNumber("warmupSteps", options.warmupSteps ?? 0, { integer: true, min: 0 });
  if (step >= n) return final;
  // np.linspace(warmup, final, n)[step]: the last warm-up step already reaches `final`.
  return n === 1 ? final : warmup + ((final - warmup) * step) / (n - 1);
}

/**
 * The DINO loss with its state: the centre `[1, K]` (zeros at first, a buffer of the recipe, saved
 * with its checkpoints) and the teacher-temperature schedule. `loss` computes the step's loss;
 * `update` moves the centre towards the teacher outputs (call it after the step, as DINO does).
 */
export class DinoLoss {
  readonly center: tf.Variable;
  readonly options: Required<DinoLossOptions> & {
    warmupTeacherTemperature: number;
    warmupSteps: number;
    centerMomentum: number;
  };

  constructor(
    readonly outDim: number,
    options: DinoLossOptions & {
      warmupTeacherTemperature?: number;
      warmupSteps?: number;
      centerMomentum?: number;
    } = {},
  ) {
    checkNumber("outDim", outDim, { integer: true, min: 1 });
    this.options = {
      nGlobal: options.nGlobal ?? 2,
      studentTemperature: options.studentTemperature ?? DINO_LOSS_DEFAULTS.studentTemperature,
      teacherTemperature: options.teacherTemperature ?? DINO_LOSS_DEFAULTS.teacherTemperature,
      warmupTeacherTemperature:
        options.warmupTeacherTemperature ?? DINO_LOSS_DEFAULTS.warmupTeacherTemperature,
      warmupSteps: options.warmupSteps ?? 0,
      centerMomentum: checkNumber(
        "centerMomentum",
        options.centerMomentum ?? DINO_LOSS_DEFAULTS.centerMomentum,
        { min: 0, max: 1 },
      ),
    };
    teacherTemperatureAt(0, this.temperatureSchedule()); // validates the schedule's options
    this.center = tf.variable(tf.zeros([1, outDim]), false);
  }

  private temperatureSchedule() {
    const o = this.options;
    return {
      warmup: o.warmupTeacherTemperature,
      final: o.teacherTemperature,
      warmupSteps: o.warmupSteps,
    };
  }

  /** τt at `step`. */
  teacherTemperature(step: number): number {
    return teacherTemperatureAt(step, this.temperatureSchedule());
  }

  /** The loss of one step (student and teacher head outputs, crop-major). */
  loss(student: tf.Tensor, teacher: tf.Tensor, step: number): tf.Scalar {
    return dinoLoss(student, teacher, this.center, {
      nGlobal: this.options.nGlobal,
      studentTemperature: this.options.studentTemperature,
      teacherTemperature: this.teacherTemperature(step),
    });
  }

  /** Move the centre towards the mean of `teacher`'s rows (momentum `centerMomentum`). */
  update(teacher: tf.Tensor): void {
    const next = updatedCenter(this.center, teacher, this.options.centerMomentum);
    this.center.assign(next);
    next.dispose();
  }

  dispose(): void {
    this.center.dispose();
  }
}
