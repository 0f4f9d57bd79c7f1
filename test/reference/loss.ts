/**
 * Float64 reference for src/ops/loss.ts: softmax cross-entropy (mean or sum over rows), argmax and
 * the count of correct predictions. `logits` is [rows, classes] row-major.
 */

/** loss_r = log Σ_c exp(x_rc) − x_r,label, computed as m + log Σ exp(x − m) with m the row max. */
export function crossEntropyRows(logits: ArrayLike<number>, labels: ArrayLike<number>, rows: number, classes: number): Float64Array {
  const losses = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let c = 0; c < classes; c++) m = Math.max(m, logits[r * classes + c]);
    let s = 0;
    for (let c = 0; c < classes; c++) s += Math.exp(logits[r * classes + c] - m);
    const label = labels[r];
    losses[r] = label < classes ? m + Math.log(s) - logits[r * classes + label] : NaN;
  }
  return losses;
}

export function softmaxCrossEntropy(
  logits: ArrayLike<number>,
  labels: ArrayLike<number>,
  rows: number,
  classes: number,
  reduction: 'mean' | 'sum' = 'mean',
): number {
  const losses = crossEntropyRows(logits, labels, rows, classes);
  let total = 0;
  for (const l of losses) total += l;
  return reduction === 'mean' ? total / rows : total;
}

/** Index of the largest value in each row; the first one on ties. */
export function argmax(logits: ArrayLike<number>, rows: number, classes: number): Uint32Array {
  const out = new Uint32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (logits[r * classes + c] > logits[r * classes + best]) best = c;
    out[r] = best;
  }
  return out;
}

export function correctCount(logits: ArrayLike<number>, labels: ArrayLike<number>, rows: number, classes: number): number {
  const predicted = argmax(logits, rows, classes);
  let count = 0;
  for (let r = 0; r < rows; r++) if (predicted[r] === labels[r]) count++;
  return count;
}
