// Kernel input names that carry an index (`t3`, `g17`, `b4.fc1W`): a fused kernel over a whole
// network names ≈ 170–330 inputs, on every call, every step. A template literal builds (and V8
// hashes, to look it up as a property key) a new string each time; the same string object, kept
// here, is hashed once. On a SiT step the names were among the larger sources of the garbage its
// host part made (tools/bench/results/lavapipe-2026-12-05-garbage/).

const byPrefix = new Map<string, string[]>();

/** `${prefix}${i}`, the same string object at every call. */
export function indexedName(prefix: string, i: number): string {
  let row = byPrefix.get(prefix);
  if (!row) {
    row = [];
    byPrefix.set(prefix, row);
  }
  let name = row[i];
  if (name === undefined) {
    name = `${prefix}${i}`;
    row[i] = name;
  }
  return name;
}

const bySuffix = new Map<string, string[]>();

/** `b${i}.${name}`: block `i`'s input `name` in a block stack's kernels, one string object each. */
export function blockInputName(i: number, name: string): string {
  let row = bySuffix.get(name);
  if (!row) {
    row = [];
    bySuffix.set(name, row);
  }
  let full = row[i];
  if (full === undefined) {
    full = `b${i}.${name}`;
    row[i] = full;
  }
  return full;
}
