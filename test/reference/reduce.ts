/** Float64 reference for src/ops/reduce.ts: sum, mean and max over any set of axes, with keepDims. */
import type { Shape } from '../../src/tensor/shape.js';
import { numel, unravel } from './elementwise.js';

export type ReduceOp = 'sum' | 'mean' | 'max';

function normalizeAxes(shape: Shape, axes?: number | readonly number[]): number[] {
  if (axes === undefined) return shape.map((_, i) => i);
  const list = typeof axes === 'number' ? [axes] : [...axes];
  return [...new Set(list.map((a) => (a < 0 ? a + shape.length : a)))].sort((p, q) => p - q);
}

/** Reduces `x` (shape `shape`) over `axes` (all when omitted); reduced axes are dropped unless keepDims. */
export function reduce(op: ReduceOp, x: ArrayLike<number>, shape: Shape, axes?: number | readonly number[], keepDims = false) {
  const reduced = normalizeAxes(shape, axes);
  const keptShape = shape.map((d, i) => (reduced.includes(i) ? 1 : d));
  const outShape = keepDims ? keptShape : shape.filter((_, i) => !reduced.includes(i));
  const out = new Float64Array(numel(keptShape)).fill(op === 'max' ? -Infinity : 0);
  const count = numel(reduced.map((i) => shape[i]));
  // Every input element adds to (or competes for) the output at its coordinates with reduced axes set to 0.
  for (let i = 0; i < x.length; i++) {
    const coords = unravel(i, shape);
    let o = 0;
    for (let d = 0; d < shape.length; d++) o = o * keptShape[d] + (reduced.includes(d) ? 0 : coords[d]);
    if (op === 'max') out[o] = Math.max(out[o], x[i]);
    else out[o] += x[i];
  }
  if (op === 'mean') for (let o = 0; o < out.length; o++) out[o] /= count;
  return { data: out, shape: outShape };
}

export function sum(x: ArrayLike<number>, shape: Shape, axes?: number | readonly number[], keepDims = false) {
  return reduce('sum', x, shape, axes, keepDims);
}

export function mean(x: ArrayLike<number>, shape: Shape, axes?: number | readonly number[], keepDims = false) {
  return reduce('mean', x, shape, axes, keepDims);
}

export function max(x: ArrayLike<number>, shape: Shape, axes?: number | readonly number[], keepDims = false) {
  return reduce('max', x, shape, axes, keepDims);
}
