/** Float64 references for the pruning criteria: per-filter L1/L2 norms and FPGM distance sums. */

/** Rows of `size` values each from a flat weight array. */
function rows(weight: ArrayLike<number>, filters: number): number[][] {
  const size = weight.length / filters;
  return Array.from({ length: filters }, (_, f) => Array.from({ length: size }, (_, i) => Number(weight[f * size + i])));
}

export function filterNorms(weight: ArrayLike<number>, filters: number, p: 1 | 2): Float64Array {
  return Float64Array.from(rows(weight, filters), (r) => (p === 1 ? r.reduce((a, v) => a + Math.abs(v), 0) : Math.sqrt(r.reduce((a, v) => a + v * v, 0))));
}

/** Σ_g ‖w_f − w_g‖₂ for every filter f. */
export function distanceSums(weight: ArrayLike<number>, filters: number): Float64Array {
  const r = rows(weight, filters);
  return Float64Array.from(r, (a) => r.reduce((total, b) => total + Math.sqrt(a.reduce((s, v, i) => s + (v - b[i]) ** 2, 0)), 0));
}
