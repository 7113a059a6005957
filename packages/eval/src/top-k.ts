/**
 * Top-k selection over rows of a similarity matrix, in plain JS on typed arrays (no closures or
 * comparator callbacks in the hot loops). Order: larger value first; among equal values the lower
 * column index first — so the result is deterministic whatever the data.
 */
export class TopKSelector {
  private readonly bv: Float32Array;
  private readonly bi: Int32Array;
  private readonly cap: number;

  /** `k`: how many to keep per row. */
  constructor(readonly k: number) {
    // Candidate buffer: rows whose value beats the running k-th best are appended, and the buffer
    // is cut back to the best k when full. After the first cut the threshold is high and appends
    // are rare, so each row costs one comparison per element plus a few selections.
    this.cap = Math.max(2 * k, k + 512);
    this.bv = new Float32Array(this.cap);
    this.bi = new Int32Array(this.cap);
  }

  /**
   * Select the best min(k, n) of `s[off .. off+n)`, written sorted (best first) to `outVal` and
   * `outIdx` (column indices). Returns the count.
   */
  select(
    s: Float32Array,
    off: number,
    n: number,
    outVal: Float32Array,
    outIdx: Int32Array,
  ): number {
    const { k, bv, bi, cap } = this;
    let m = 0;
    let threshold = Number.NEGATIVE_INFINITY;
    for (let j = 0; j < n; j++) {
      const v = s[off + j];
      // Strictly greater: a later column equal to the k-th best ranks after it, so it never enters
      // (NaN never enters either).
      // equal to the k-th best ranks after it, so it never enters.
      if (v > threshold) {
        bv[m] = v;
        bi[m] = j;
        m++;
        if (m === cap) {
          quickSelect(bv, bi, 0, m - 1, k - 1);
          m = k;
          threshold = bv[k - 1];
        }
      }
    }
    if (m > k) {
      quickSelect(bv, bi, 0, m - 1, k - 1);
      m = k;
    }
    quickSort(bv, bi, 0, m - 1);
    outVal.set(bv.subarray(0, m));
    outIdx.set(bi.subarray(0, m));
    return m;
  }
}

function better(v: Float32Array, ix: Int32Array, a: number, b: number): boolean {
  return v[a] > v[b] || (v[a] === v[b] && ix[a] < ix[b]);
}

function swap(v: Float32Array, ix: Int32Array, a: number, b: number): void {
  const tv = v[a];
  v[a] = v[b];
  v[b] = tv;
  const ti = ix[a];
  ix[a] = ix[b];
  ix[b] = ti;
}

/** Partition [lo, hi] around a median-of-three pivot; returns the pivot's final position. */
function partition(v: Float32Array, ix: Int32Array, lo: number, hi: number): number {
  const mid = (lo + hi) >> 1;
  if (better(v, ix, mid, lo)) swap(v, ix, mid, lo);
  if (better(v, ix, hi, lo)) swap(v, ix, hi, lo);
  if (better(v, ix, hi, mid)) swap(v, ix, hi, mid);
  // Now lo ≥ mid ≥ hi in rank order; use mid as the pivot, parked at hi.
  swap(v, ix, mid, hi);
  let store = lo;
  for (let i = lo; i < hi; i++) {
    if (better(v, ix, i, hi)) {
      swap(v, ix, i, store);
      store++;
    }
  }
  swap(v, ix, store, hi);
  return store;
}

/** Rearrange so that position `nth` holds the element of that rank and all before it rank higher. */
function quickSelect(v: Float32Array, ix: Int32Array, lo: number, hi: number, nth: number): void {
  while (hi > lo) {
    const p = partition(v, ix, lo, hi);
    if (p === nth) return;
    if (p < nth) lo = p + 1;
    else hi = p - 1;
  }
}

/** Sort [lo, hi] best first (keys are unique: the column index breaks every tie). */
function quickSort(v: Float32Array, ix: Int32Array, lo: number, hi: number): void {
  while (hi - lo > 16) {
    const p = partition(v, ix, lo, hi);
    // Recurse into the smaller side to bound the stack depth.
    if (p - lo < hi - p) {
      quickSort(v, ix, lo, p - 1);
      lo = p + 1;
    } else {
      quickSort(v, ix, p + 1, hi);
      hi = p - 1;
    }
  }
  for (let i = lo + 1; i <= hi; i++) {
    for (let j = i; j > lo && better(v, ix, j, j - 1); j--) swap(v, ix, j, j - 1);
  }
}
