// Fake recipes and loaders for this package's tests (not exported).
import { Rng } from "@sit/core";
import * as tf from "@tensorflow/tfjs";
import type { Recipe, RecipeState, StepResult } from "./recipe";

export interface RegressionBatch {
  x: tf.Tensor2D;
  y: tf.Tensor2D;
}

const DIM = 6;
const TRUE_W = [0.5, -1, 2, 0.25, -0.75, 1.5];

/**
 * A deterministic loader: epoch `e` yields `batches` batches drawn from `Rng.seed(1000 + e)`,
 * created lazily (tensors exist only once yielded).
 */
export function regressionLoader(batches: number, batchSize = 8) {
  return function* epoch(e: number): Generator<RegressionBatch> {
    const rng = Rng.seed(1000 + e);
    for (let b = 0; b < batches; b++) {
      const x = new Float32Array(batchSize * DIM);
      rng.fillNormal(x);
      const y = new Float32Array(batchSize);
      for (let i = 0; i < batchSize; i++) {
        let s = 0.1 * rng.normal();
        for (let j = 0; j < DIM; j++) s += x[i * DIM + j] * TRUE_W[j];
        y[i] = s;
      }
      yield { x: tf.tensor2d(x, [batchSize, DIM]), y: tf.tensor2d(y, [batchSize, 1]) };
    }
  };
}

/**
 * Linear regression trained with a hand-written Adam (moments and step count are state) and a
 * random dropout mask on the inputs drawn from its own Rng (so the Rng state matters for resume),
 * with a cosine learning-rate schedule indexed by the global step.
 */
export class RegressionRecipe implements Recipe<RegressionBatch> {
  readonly name = "fake-regression";
  readonly w = tf.tidy(() => tf.variable(tf.zeros([DIM, 1]), true));
  readonly m = tf.tidy(() => tf.variable(tf.zeros([DIM, 1]), false));
  readonly v = tf.tidy(() => tf.variable(tf.zeros([DIM, 1]), false));
  private t = 0;
  private rng: Rng;
  /** Steps at which the loss is reported as NaN (guard tests). */
  nanAt = new Set<number>();
  /** Leak one tensor per step (leak tests). */
  leak = false;

  constructor(
    seed = 7,
    readonly totalSteps = 100,
  ) {
    this.rng = Rng.seed(seed);
  }

  lr(step: number): number {
    return 0.05 * 0.5 * (1 + Math.cos((Math.PI * step) / this.totalSteps));
  }

  trainStep(batch: RegressionBatch, step: number): StepResult {
    const lr = this.lr(step);
    const keep = new Float32Array(DIM).map(() => (this.rng.bernoulli(0.8) ? 1.25 : 0));
    this.t++;
    const t = this.t;
    const lossT = tf.tidy(() => {
      const mask = tf.tensor2d(keep, [1, DIM]);
      const { value, grads } = tf.variableGrads(
        () => tf.losses.meanSquaredError(batch.y, batch.x.mul(mask).matMul(this.w)) as tf.Scalar,
        [this.w],
      );
      const g = grads[this.w.name];
      this.m.assign(this.m.mul(0.9).add(g.mul(0.1)));
      this.v.assign(this.v.mul(0.999).add(g.square().mul(0.001)));
      const mHat = this.m.div(1 - 0.9 ** t);
      const vHat = this.v.div(1 - 0.999 ** t);
      this.w.assign(this.w.sub(mHat.div(vHat.sqrt().add(1e-8)).mul(lr)));
      return value;
    });
    const loss = lossT.dataSync()[0];
    lossT.dispose();
    if (this.leak) tf.scalar(loss);
    const reported = this.nanAt.has(step) ? Number.NaN : loss;
    return { loss: reported, terms: { mse: reported, half: loss / 2 }, schedule: { lr } };
  }

  saveState(): RecipeState {
    return {
      tensors: { w: this.w, "optimizer.m": this.m, "optimizer.v": this.v },
      meta: { t: this.t, rng: this.rng.state() },
    };
  }

  loadState(state: RecipeState): void {
    this.w.assign(state.tensors.w);
    this.m.assign(state.tensors["optimizer.m"]);
    this.v.assign(state.tensors["optimizer.v"]);
    this.t = state.meta.t as number;
    this.rng = Rng.fromState(state.meta.rng as ReturnType<Rng["state"]>);
  }

  dispose(): void {
    tf.dispose([this.w, this.m, this.v]);
  }
}
