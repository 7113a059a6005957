import { ATTENTION_ROWS as ROWS, PLACE_WGSL } from "./attention-place";

// The general fused attention passes (attention.ts runs them; attention-vec4.ts has the ones for
// head sizes that are multiples of 4 up to 64): one thread per query (or key) row, holding its
// rows in private arrays of the head size, which the WGSL compiler may place in memory.

/** Largest head dimension the kernels take (private arrays of this size per thread). */
export const MAX_HEAD_DIM = 512;

/** Rows of a shared-memory tile of K/V (or Q/dO): two tiles of `tile·hd` floats fit in 16 KiB. */
function tileRows(hd: number): number {
  return Math.max(1, Math.min(32, Math.floor(2048 / hd)));
}

/**
 * WGSL preamble shared by the attention programs: the (batch, head, row-tile) of this workgroup
 * and the thread's row, read from the packed `QKV [B, N, 3D]` (q, k, v along the last axis, heads
 * contiguous slices of hd inside each). Compile-time HD and tile sizes; everything else uniform.
 */
export function generalPreamble(hd: number): string {
  const kt = tileRows(hd);
  return `
  const HD = ${hd};
  const ROWS = ${ROWS};
  const KT = ${kt};
  var<workgroup> tileA : array<f32, ${kt * hd}>;
  var<workgroup> tileB : array<f32, ${kt * hd}>;
  var<workgroup> tileS : array<vec2<f32>, ${kt}>;
  ${PLACE_WGSL}`;
}

/**
 * Load rows `t·KT …` of the packed operand at column offset `colA` (and `colB`) of every token into
 * `tileA` (`tileB`), cooperatively; the caller brackets it with barriers.
 */
function loadTile(colA: string, colB: string | null, extra = ""): string {
  return `
      for (var e = tid; e < KT * HD; e += ROWS) {
        let j = t * KT + e / HD;
        if (P.valid && j < n) {
          let off = base + j * d3 + e % HD;
          tileA[e] = ${colA};
          ${colB ? `tileB[e] = ${colB};` : ""}
        }
      }
      ${extra}`;
}

/** Forward: O = softmax(scale·QKᵀ)·V per (batch, head), online softmax over key tiles. */
export function forwardBody(): string {
  return `
    var q : array<f32, HD>;
    var acc : array<f32, HD>;
    var sc : array<f32, KT>;
    if (P.rowOk) {
      for (var c = 0; c < HD; c++) { q[c] = QKV[base + P.row * d3 + c] * scale; }
    }
    var mx = -3.0e38;
    var l = 0.0;
    for (var t = 0; t < tiles; t++) {
      ${loadTile("QKV[off + d]", "QKV[off + 2 * d]")}
      workgroupBarrier();
      let cnt = min(KT, n - t * KT);
      if (P.rowOk) {
        var tmax = mx;
        for (var jj = 0; jj < cnt; jj++) {
          var s = 0.0;
          for (var c = 0; c < HD; c++) { s += q[c] * tileA[jj * HD + c]; }
          sc[jj] = s;
          tmax = max(tmax, s);
        }
        let corr = exp(mx - tmax);
        l = l * corr;
        for (var c = 0; c < HD; c++) { acc[c] = acc[c] * corr; }
        for (var jj = 0; jj < cnt; jj++) {
          let p = exp(sc[jj] - tmax);
          l += p;
          for (var c = 0; c < HD; c++) { acc[c] += p * tileB[jj * HD + c]; }
        }
        mx = tmax;
      }
      workgroupBarrier();
    }
    if (P.rowOk) {
      let inv = 1.0 / l;
      let ob = (P.b * n + P.row) * d + P.head * HD;
      for (var c = 0; c < HD; c++) { result[ob + c] = acc[c] * inv; }
    }`;
}

/**
 * Backward 1: per query row, logsumexp of its logits and δ = Σ dO·O → `out [B, H, N, 2]`
 * (`result` in a pass of its own).
 */
export function statsBody(out = "result"): string {
  return `
    var q : array<f32, HD>;
    if (P.rowOk) {
      for (var c = 0; c < HD; c++) { q[c] = QKV[base + P.row * d3 + c] * scale; }
    }
    var mx = -3.0e38;
    var l = 0.0;
    for (var t = 0; t < tiles; t++) {
      ${loadTile("QKV[off + d]", null)}
      workgroupBarrier();
      let cnt = min(KT, n - t * KT);
      if (P.rowOk) {
        for (var jj = 0; jj < cnt; jj++) {
          var s = 0.0;
          for (var c = 0; c < HD; c++) { s += q[c] * tileA[jj * HD + c]; }
          let m2 = max(mx, s);
          l = l * exp(mx - m2) + exp(s - m2);
          mx = m2;
        }
      }
      workgroupBarrier();
    }
    if (P.rowOk) {
      let ob = (P.b * n + P.row) * d + P.head * HD;
      var delta = 0.0;
      for (var c = 0; c < HD; c++) { delta += DY[ob + c] * O[ob + c]; }
      let sb = ((P.b * uniforms.numHeads + P.head) * n + P.row) * 2;
      ${out}[sb] = mx + log(l);
      ${out}[sb + 1] = delta;
    }`;
}

/** Backward 2: dQ = scale·Σ_j dS_ij·K_j with dS = P ⊙ (dO·Vᵀ − δ), into dQKV's q columns. */
export function dqBody(): string {
  return `
    var q : array<f32, HD>;
    var dO : array<f32, HD>;
    var dq : array<f32, HD>;
    var lse = 0.0;
    var delta = 0.0;
    if (P.rowOk) {
      let ob = (P.b * n + P.row) * d + P.head * HD;
      for (var c = 0; c < HD; c++) {
        q[c] = QKV[base + P.row * d3 + c] * scale;
        dO[c] = DY[ob + c];
      }
      let sb = ((P.b * uniforms.numHeads + P.head) * n + P.row) * 2;
      lse = ST[sb];
      delta = ST[sb + 1];
    }
    for (var t = 0; t < tiles; t++) {
      ${loadTile("QKV[off + d]", "QKV[off + 2 * d]")}
      workgroupBarrier();
      let cnt = min(KT, n - t * KT);
      if (P.rowOk) {
        for (var jj = 0; jj < cnt; jj++) {
          var s = 0.0;
          var dp = 0.0;
          for (var c = 0; c < HD; c++) {
            s += q[c] * tileA[jj * HD + c];
            dp += dO[c] * tileB[jj * HD + c];
          }
          let ds = exp(s - lse) * (dp - delta);
          for (var c = 0; c < HD; c++) { dq[c] += ds * tileA[jj * HD + c]; }
        }
      }
      workgroupBarrier();
    }
    if (P.rowOk) {
      for (var c = 0; c < HD; c++) { result[base + P.row * d3 + c] = dq[c] * scale; }
    }`;
}

/**
 * Backward 1 and 2 in one pass (the fused block): each thread writes its query row's statistics
 * to `ST` (bound read-write; dK/dV's pass reads them) and reads them back for its dQ. No other
 * thread reads them in this pass, so no barrier is needed between the two.
 */
export function statsDqBody(): string {
  return `{ ${statsBody("ST")} }
    { ${dqBody()} }`;
}

/**
 * Backward 3: per key row j, dV_j = Σ_i P_ij·dO_i and dK_j = scale·Σ_i dS_ij·Q_i, over tiles of
 * query rows (Q and dO in shared memory with their logsumexp and δ), into dQKV's k and v columns.
 */
export function dkdvBody(): string {
  return `
    var k : array<f32, HD>;
    var v : array<f32, HD>;
    var dk : array<f32, HD>;
    var dv : array<f32, HD>;
    if (P.rowOk) {
      for (var c = 0; c < HD; c++) {
        k[c] = QKV[base + P.row * d3 + d + c] * scale;
        v[c] = QKV[base + P.row * d3 + 2 * d + c];
      }
    }
    let statsBase = (P.b * uniforms.numHeads + P.head) * n;
    for (var t = 0; t < tiles; t++) {
      for (var e = tid; e < KT * HD; e += ROWS) {
        let i = t * KT + e / HD;
        if (P.valid && i < n) {
          tileA[e] = QKV[base + i * d3 + e % HD];
          tileB[e] = DY[(P.b * n + i) * d + P.head * HD + e % HD];
        }
      }
      for (var e = tid; e < KT; e += ROWS) {
        let i = t * KT + e;
        if (P.valid && i < n) { tileS[e] = vec2<f32>(ST[(statsBase + i) * 2], ST[(statsBase + i) * 2 + 1]); }
      }
      workgroupBarrier();
      let cnt = min(KT, n - t * KT);
      if (P.rowOk) {
        for (var ii = 0; ii < cnt; ii++) {
          var s = 0.0;
          var dp = 0.0;
          for (var c = 0; c < HD; c++) {
            s += tileA[ii * HD + c] * k[c];
            dp += tileB[ii * HD + c] * v[c];
          }
          let p = exp(s - tileS[ii].x);
          let ds = p * (dp - tileS[ii].y);
          for (var c = 0; c < HD; c++) {
            dv[c] += p * tileB[ii * HD + c];
            dk[c] += ds * tileA[ii * HD + c];
          }
        }
      }
      workgroupBarrier();
    }
    if (P.rowOk) {
      let ob = base + P.row * d3;
      for (var c = 0; c < HD; c++) {
        result[ob + d + c] = dk[c] * scale;
        result[ob + 2 * d + c] = dv[c];
      }
    }`;
}
