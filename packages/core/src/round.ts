/**
 * Python's `round` (half to even), which the reference code applies to block sides and crop sizes:
 * the ported computations must round as it does to draw the same masks and crops.
 */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}
