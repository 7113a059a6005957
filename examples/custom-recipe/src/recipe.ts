import * as tf from "@tensorflow/tfjs";
import { MLP, Module, Rng } from "@sit/core";
import { TransformerDecoder } from "@sit/decoder";
import { GmmlMasker, corruptViews } from "@sit/gmml";
import { maskedReconstructionLoss, ntXentLoss } from "@sit/losses";
import {
  ModuleRecipe,
  type OptimConfig,
  type TwoViewBatch,
  gradientsByName,
  optimSchema,
  parseConfig,
} from "@sit/recipes";
import type { StepResult } from "@sit/train";
import { VisionTransformer } from "@sit/vit";

/** The ViT (any size; decoder and projector are small), the optimiser config, λ and the seed. */
export interface GmmlSimclrOptions {
  vit: { imgSize: number; patchSize: number; embedDim: number; depth: number; numHeads: number };
  optim: Partial<OptimConfig> & { stepsPerEpoch: number };
  lambda?: number;
  seed?: number;
}

/** ViT encoder, light transformer decoder (pixels) and MLP projector (NT-Xent embeddings). */
class Network extends Module {
  readonly vit: VisionTransformer;
  readonly decoder: TransformerDecoder;
  readonly projector: MLP;
  constructor({ vit: v }: GmmlSimclrOptions, rng: Rng) {
    super();
    const [D, grid] = [v.embedDim, v.imgSize / v.patchSize];
    this.vit = this.registerModule("vit", new VisionTransformer({ ...v, rng }));
    const decoder = new TransformerDecoder({
      ...{ inDim: D, gridSize: grid, patchSize: v.patchSize, outChans: 3, embedDim: 64 },
      ...{ depth: 1, numHeads: 4, rng },
    });
    this.decoder = this.registerModule("decoder", decoder);
    const proj = [
      { in: D, out: 2 * D, activation: "gelu" as const },
      { in: 2 * D, out: 64 },
    ];
    this.projector = this.registerModule("projector", new MLP(proj, { rng }));
  }
}

/**
 * A new SSL method from the blocks: GMML-corrupt both views; encode them; a transformer decoder
 * (mask tokens where GMML hid most of a patch) reconstructs the clean pixels under the mask (L1),
 * and SimCLR's NT-Xent pulls the two views' CLS embeddings together: `L = NT-Xent + λ·L1`.
 * Optimiser, schedules, checkpoint state and generators come from @sit/recipes' ModuleRecipe.
 */
export class GmmlSimclrRecipe extends ModuleRecipe<Network, TwoViewBatch, never> {
  readonly name = "gmml-simclr";
  readonly masker: GmmlMasker;
  readonly lambda: number;

  constructor(o: GmmlSimclrOptions) {
    const rng = Rng.seed(o.seed ?? 0);
    const optim = parseConfig(optimSchema, { epochs: 1, ...o.optim }, "optim");
    super(new Network(o, rng.split()), { optim, seed: o.seed ?? 0 });
    this.rngs.mask = rng.split();
    this.rngs.dropPath = rng.split();
    this.masker = new GmmlMasker({ ratio: 0.5, fill: "noise", patchSize: o.vit.patchSize });
    this.lambda = o.lambda ?? 5;
  }

  protected backboneOf(network: Network): VisionTransformer {
    return network.vit;
  }

  async trainStep(batch: TwoViewBatch, step: number): Promise<StepResult> {
    const hyper = this.beginStep(step); // scheduled lr, wd, momentum (webgpu: buffer reuse)
    const { corrupted, masks, tokenMasks } = corruptViews(this.masker, batch.views, this.rngs.mask);
    const values = tf.tidy(() => {
      const [x, input, mask, tokens] = [batch.views, corrupted, masks, tokenMasks].map((t) =>
        tf.concat(t as tf.Tensor[], 0),
      );
      const B = batch.views[0].shape[0];
      const { loss, grads, extras } = gradientsByName(this.student, () => {
        const out = this.student.vit.forward(input, { rng: this.rngs.dropPath });
        const z = this.student.projector.apply(out.cls);
        const lc = ntXentLoss(z.slice([0, 0], [B, -1]), z.slice([B, 0], [B, -1]), {
          temperature: 0.2,
        });
        const pred = this.student.decoder.forward(out.patchTokens, { mask: tokens }).image;
        const lr = maskedReconstructionLoss(pred, x, mask);
        return { loss: tf.add(lc, tf.mul(lr, this.lambda)) as tf.Scalar, extras: { lc, lr } };
      });
      this.applyGradients(grads, hyper);
      const stacked = tf.stack([loss, extras.lc, extras.lr]);
      tf.dispose([extras.lc, extras.lr]); // kept past the gradient tape: ours to dispose
      return stacked;
    });
    tf.dispose([...corrupted, ...masks, ...tokenMasks]);
    return this.readResult(values, ["contrastive", "reconstruction"], hyper); // async: any backend
  }
}
