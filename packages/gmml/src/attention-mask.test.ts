import * as tf from "@tensorflow/tfjs";
import { Rng } from "@sit/core";
import { useWebgpu } from "@sit/testing";
import { afterAll, describe, expect, it } from "vitest";
import { AttentionMasker, clsAttentionScores } from "./attention-mask";

afterAll(async () => {
  await tf.setBackend("cpu");
});

// 8×8 images, patch 2: a 4×4 grid of N = 16 tokens. Hand-made scores with a known order:
// token t has score PRIORITY.indexOf(t) from the end, so the ranking is PRIORITY.
const PRIORITY = [5, 6, 9, 10, 0, 15, 3, 12, 1, 2, 4, 7, 8, 11, 13, 14];
const SCORES = new Float32Array(16);
PRIORITY.forEach((t, rank) => {
  SCORES[t] = (16 - rank) / 100;
});
const sorted = (xs: Iterable<number>) => [...xs].sort((a, b) => a - b);
const maskedTokens = (mask: ArrayLike<number>, b = 0, n = 16) =>
  Array.from({ length: n }, (_, t) => t).filter((t) => mask[b * n + t] === 1);

function images(b = 1): tf.Tensor4D {
  return tf.tensor4d(Rng.seed(3).fillNormal(new Float32Array(b * 8 * 8 * 3), 0, 1), [b, 8, 8, 3]);
}

describe("clsAttentionScores", () => {
  it("averages the CLS row over heads and drops the CLS column", async () => {
    await tf.setBackend("cpu");
    // B 1, 2 heads, 1 + 3 tokens; rows other than CLS's must not matter (filled with 9).
    const a = new Float32Array(2 * 4 * 4).fill(9);
    a.set([0.1, 0.2, 0.3, 0.4], 0); // head 0, CLS row
    a.set([0.4, 0.0, 0.5, 0.1], 16); // head 1, CLS row
    const s = clsAttentionScores(tf.tensor4d(a, [1, 2, 4, 4]));
    expect(s.shape).toEqual([1, 3]);
    expect(Array.from(s.dataSync())).toEqual([0.1, 0.4, 0.25].map((x) => expect.closeTo(x, 6)));
  });
});

describe("AttentionMasker", () => {
  it('"high" masks exactly the most attended patches, token-aligned, and zeros their pixels', () => {
    const m = new AttentionMasker({ patchSize: 2, ratio: 0.5 });
    expect(sorted(maskedTokens(m.tokenMask(SCORES, [1, 16], Rng.seed(1))))).toEqual(
      sorted(PRIORITY.slice(0, 8)),
    );
    const x = images();
    const r = m.forScores(SCORES, [1, 16]).apply(x, Rng.seed(1));
    const clean = x.dataSync();
    for (let y = 0; y < 8; y++)
      for (let xx = 0; xx < 8; xx++) {
        const token = Math.floor(y / 2) * 4 + Math.floor(xx / 2);
        const masked = PRIORITY.slice(0, 8).includes(token);
        expect(r.pixelMask.data[y * 8 + xx]).toBe(masked ? 1 : 0);
        const p = (y * 8 + xx) * 3;
        expect(r.corrupted.data[p]).toBe(masked ? 0 : clean[p]);
      }
    x.dispose();
  });

  it('"hint" reveals showRatio·N of the showMax·N most attended and keeps the rest masked', () => {
    const m = new AttentionMasker({
      patchSize: 2,
      mode: "hint",
      ratio: 0.5,
      showMax: 0.25,
      showRatio: 0.125,
    });
    expect(m.counts(16)).toEqual({ chosen: 8, top: 4, reveal: 2 });
    const revealedSeen = new Set<number>();
    const rng = Rng.seed(0);
    for (let draw = 0; draw < 30; draw++) {
      const masked = maskedTokens(m.tokenMask(SCORES, [1, 16], rng));
      expect(masked).toHaveLength(6);
      // Ranks 4–7 are never hints; ranks 8–15 never masked.
      for (const t of PRIORITY.slice(4, 8)) expect(masked).toContain(t);
      for (const t of PRIORITY.slice(8)) expect(masked).not.toContain(t);
      const revealed = PRIORITY.slice(0, 4).filter((t) => !masked.includes(t));
      expect(revealed).toHaveLength(2);
      for (const t of revealed) revealedSeen.add(t);
    }
    // The hints are drawn at random among the top 4, not always the same ones.
    expect(revealedSeen.size).toBe(4);
  });

  it("holds the ratio on every image of a batch, whatever the scores", () => {
    const B = 5;
    const scores = Rng.seed(4).fillNormal(new Float32Array(B * 16), 0, 1);
    for (const ratio of [0.1, 0.3, 0.75, 1]) {
      const m = new AttentionMasker({ patchSize: 2, ratio });
      const mask = m.tokenMask(scores, [B, 16], Rng.seed(0));
      for (let b = 0; b < B; b++)
        expect(maskedTokens(mask, b), `ratio ${ratio}`).toHaveLength(Math.floor(16 * ratio));
    }
  });

  it("the tensor path (top-k on the backend) gives the host masks exactly", async () => {
    await tf.setBackend("cpu");
    const B = 3;
    const scores = Rng.seed(6).fillNormal(new Float32Array(B * 16), 0, 1);
    const m = new AttentionMasker({ patchSize: 2, mode: "hint", showMax: 0.25, showRatio: 0.125 });
    const x = images(B);
    const s = tf.tensor2d(scores, [B, 16]);
    const out = m.maskViews([x], [s], Rng.seed(9));
    const host = m.forScores(scores, [B, 16]).apply(x, Rng.seed(9));
    expect(Array.from(out.tokenMasks[0].dataSync())).toEqual(Array.from(host.tokenMask!.mask));
    expect(Array.from(out.masks[0].dataSync())).toEqual(Array.from(host.pixelMask.data));
    // x·(1 − m) gives −0 where the host writes +0: equal numbers, so compare as numbers.
    const plus = (a: ArrayLike<number>) => Array.from(a, (v) => v + 0);
    expect(plus(out.corrupted[0].dataSync())).toEqual(plus(host.corrupted.data));
    tf.dispose([x, s, ...out.corrupted, ...out.masks, ...out.tokenMasks]);
  });

  it("pixel groups: one patch-sized group within half a patch of each chosen patch", () => {
    const m = new AttentionMasker({ patchSize: 2, ratio: 0.25, groups: "pixel" });
    const x = images();
    const r = m.forScores(SCORES, [1, 16]).apply(x, Rng.seed(2));
    const chosen = PRIORITY.slice(0, 4);
    let count = 0;
    for (let y = 0; y < 8; y++)
      for (let xx = 0; xx < 8; xx++) {
        if (!r.pixelMask.data[y * 8 + xx]) continue;
        count++;
        // Every masked pixel lies in a chosen cell grown by one pixel (half a patch) on each side.
        const near = chosen.some((t) => {
          const [ty, tx] = [Math.floor(t / 4) * 2, (t % 4) * 2];
          return y >= ty - 1 && y <= ty + 2 && xx >= tx - 1 && xx <= tx + 2;
        });
        expect(near, `pixel (${y}, ${xx})`).toBe(true);
      }
    expect(count).toBeGreaterThan(4); // at least one whole group
    expect(count).toBeLessThanOrEqual(4 * 4); // at most 4 groups of 2×2 pixels
    expect(r.tokenMask?.shape).toEqual([1, 16]);
    x.dispose();
  });

  it("maskViewsAsync: pixel groups read back asynchronously give the synchronous masks", async () => {
    await tf.setBackend("cpu");
    const m = new AttentionMasker({ patchSize: 2, groups: "pixel", ratio: 0.25 });
    const x = images(2);
    const s = tf.tensor2d(Rng.seed(5).fillNormal(new Float32Array(32), 0, 1), [2, 16]);
    const a = await m.maskViewsAsync([x], [s], Rng.seed(4));
    const b = m.maskViews([x], [s], Rng.seed(4));
    expect(Array.from(a.masks[0].dataSync())).toEqual(Array.from(b.masks[0].dataSync()));
    expect(Array.from(a.corrupted[0].dataSync())).toEqual(Array.from(b.corrupted[0].dataSync()));
    tf.dispose([x, s, ...Object.values(a).flat(), ...Object.values(b).flat()]);
  });

  it("refuses wrong options and shapes by name", () => {
    expect(() => new AttentionMasker({ patchSize: 2, mode: "low" as "high" })).toThrow(/mode/);
    expect(() => new AttentionMasker({ patchSize: 2, ratio: 0 })).toThrow(/ratio/);
    const m = new AttentionMasker({ patchSize: 2 });
    const x = images();
    expect(() => m.forScores(SCORES, [1, 15]).apply(x, Rng.seed(0))).toThrow(/scores: expected/);
    x.dispose();
  });

  it("keeps the masks on the device on webgpu: the scores are never read back", async (ctx) => {
    if (!(await useWebgpu(ctx))) return;
    const m = new AttentionMasker({ patchSize: 2, mode: "hint", showMax: 0.25, showRatio: 0.125 });
    const x = images(2);
    const scores = Rng.seed(8).fillNormal(new Float32Array(2 * 16), 0, 1);
    const s = tf.tensor2d(scores, [2, 16]);
    const fail = () => {
      throw new Error("read back");
    };
    Object.assign(s, { dataSync: fail, data: fail, arraySync: fail, array: fail });
    const out = m.maskViews([x], [s], Rng.seed(1));
    expect(tf.getBackend()).toBe("webgpu");
    const host = m.tokenMask(scores, [2, 16], Rng.seed(1));
    expect(Array.from(await out.tokenMasks[0].data())).toEqual(Array.from(host));
    tf.dispose([x, s, ...out.corrupted, ...out.masks, ...out.tokenMasks]);
  });
});
