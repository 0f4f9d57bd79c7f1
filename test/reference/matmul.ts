/** Float64 reference for src/ops/matmul.ts: C = op(A)·op(B), op an optional transpose. */

/**
 * `a` is stored [m, k] (or [k, m] when transposeA), `b` is stored [k, n] (or [n, k] when transposeB);
 * returns C [m, n] row-major.
 */
export function matmul(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  m: number,
  k: number,
  n: number,
  transposeA = false,
  transposeB = false,
): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let acc = 0;
      for (let p = 0; p < k; p++) {
        const aip = transposeA ? a[p * m + i] : a[i * k + p];
        const bpj = transposeB ? b[j * k + p] : b[p * n + j];
        acc += aip * bpj;
      }
      c[i * n + j] = acc;
    }
  }
  return c;
}
