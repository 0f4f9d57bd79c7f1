/**
 * Float64 reference for src/ops/elementwise.ts: NumPy broadcasting binary ops and unary ops, as
 * plain loops. Arrays are row-major Float64Arrays with their shape beside them.
 */
import type { Shape } from '../../src/tensor/shape.js';

export type BinaryOp = 'add' | 'sub' | 'mul' | 'div' | 'equal';
export type UnaryOp = 'relu' | 'exp' | 'log' | 'neg' | 'scale' | 'addScalar';

/** The broadcast shape: align on the right; a size of 1 stretches to the other size. */
export function broadcastShape(a: Shape, b: Shape): number[] {
  const rank = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[i - (rank - a.length)] ?? 1;
    const db = b[i - (rank - b.length)] ?? 1;
    if (da !== db && da !== 1 && db !== 1) throw new Error(`reference: cannot broadcast [${a}] with [${b}]`);
    out.push(Math.max(da, db));
  }
  return out;
}

/** Index into a tensor of shape `shape` for the output coordinates `coords` (stretched axes read index 0). */
function broadcastIndex(coords: readonly number[], shape: Shape): number {
  const offset = coords.length - shape.length;
  let index = 0;
  for (let d = 0; d < shape.length; d++) {
    const c = shape[d] === 1 ? 0 : coords[d + offset];
    index = index * shape[d] + c;
  }
  return index;
}

/** Row-major coordinates of a flat index. */
export function unravel(index: number, shape: Shape): number[] {
  const coords = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) {
    coords[d] = index % shape[d];
    index = Math.floor(index / shape[d]);
  }
  return coords;
}

export function numel(shape: Shape): number {
  return shape.reduce((n, d) => n * d, 1);
}

function apply(op: BinaryOp, x: number, z: number): number {
  switch (op) {
    case 'add':
      return x + z;
    case 'sub':
      return x - z;
    case 'mul':
      return x * z;
    case 'div':
      return x / z;
    case 'equal':
      return x === z ? 1 : 0;
  }
}

/** y = a op b with broadcasting; returns the data and the output shape. */
export function binary(op: BinaryOp, a: ArrayLike<number>, aShape: Shape, b: ArrayLike<number>, bShape: Shape) {
  const shape = broadcastShape(aShape, bShape);
  const data = new Float64Array(numel(shape));
  for (let i = 0; i < data.length; i++) {
    const coords = unravel(i, shape);
    data[i] = apply(op, a[broadcastIndex(coords, aShape)], b[broadcastIndex(coords, bShape)]);
  }
  return { data, shape };
}

/** y = f(x) elementwise; `alpha` is the factor of scale and the addend of addScalar. */
export function unary(op: UnaryOp, x: ArrayLike<number>, alpha = 0): Float64Array {
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    switch (op) {
      case 'relu':
        y[i] = v > 0 ? v : 0;
        break;
      case 'exp':
        y[i] = Math.exp(v);
        break;
      case 'log':
        y[i] = Math.log(v);
        break;
      case 'neg':
        y[i] = -v;
        break;
      case 'scale':
        y[i] = v * alpha;
        break;
      case 'addScalar':
        y[i] = v + alpha;
        break;
    }
  }
  return y;
}
