/**
 * Reductions over any set of axes: sum, mean, max (shaders/reduce.wgsl). Each run of adjacent
 * reduced axes becomes one pass over a [outer, reduce, inner] view.
 */
import { defineOp } from '../autograd/function.js';
import { Tensor } from '../tensor/tensor.js';
import { formatShape, normalizeAxis, numel, type Shape } from '../tensor/shape.js';
import { run1d } from './kernels.js';
import { binaryKernel, broadcastTo, unaryKernel } from './elementwise.js';

type ReduceOp = 'sum' | 'max';
const OPS: Record<ReduceOp, number> = { sum: 0, max: 1 };

/** Outputs below which a long axis is first split into partial results. */
const FEW_OUTPUTS = 4096;
const CHUNK = 256;

/** Reduces a [outer, reduce, inner] view of `x` to [outer, inner] (no graph). */
export function reduceAxisKernel(x: Tensor, outer: number, reduce: number, inner: number, op: ReduceOp, scale = 1): Tensor {
  return reducePass(x, outer, reduce, inner, op, scale);
}

function reducePass(x: Tensor, outer: number, reduce: number, inner: number, op: ReduceOp, scale: number): Tensor {
  const spec = { family: 'reduce' as const, entry: 'reduce_axis', bindings: ['dims', 'x', 'y'], overrides: { OP: OPS[op] } };
  if (outer * inner < FEW_OUTPUTS && reduce > 2 * CHUNK) {
    const chunks = Math.ceil(reduce / CHUNK);
    const partial = Tensor.empty([outer, chunks, inner]);
    run1d(spec, { x: x.buffer, y: partial.buffer }, { outer, reduce, inner, chunk: CHUNK, chunks, scale: 1 }, outer * chunks * inner);
    const y = reducePass(partial, outer, chunks, inner, op, scale);
    partial.dispose();
    return y;
  }
  const y = Tensor.empty([outer, inner]);
  run1d(spec, { x: x.buffer, y: y.buffer }, { outer, reduce, inner, chunk: reduce, chunks: 1, scale }, outer * inner);
  return y;
}

function normalizeAxes(shape: Shape, axes?: number | readonly number[]): number[] {
  if (axes === undefined) return shape.map((_, i) => i);
  const list = typeof axes === 'number' ? [axes] : [...axes];
  const normalized = [...new Set(list.map((a) => normalizeAxis(a, shape.length)))].sort((p, q) => p - q);
  return normalized;
}

function keptShape(shape: Shape, axes: readonly number[]): number[] {
  return shape.map((d, i) => (axes.includes(i) ? 1 : d));
}

/** Reduces `x` over `axes` with `op`, multiplying by `scale`; the result has size-1 reduced axes. */
function reduceKernel(x: Tensor, axes: readonly number[], op: ReduceOp, scale: number): Tensor {
  if (x.dtype !== 'f32') throw new Error(`${op}: expected an f32 tensor, got ${x.describe()}`);
  let shape = [...x.shape];
  let current = x;
  // Innermost runs first; each pass replaces a run of axes by a single 1.
  let i = shape.length - 1;
  let pendingScale = scale;
  while (i >= 0) {
    if (!axes.includes(i)) {
      i--;
      continue;
    }
    let start = i;
    while (start - 1 >= 0 && axes.includes(start - 1)) start--;
    const outer = numel(shape.slice(0, start));
    const reduce = numel(shape.slice(start, i + 1));
    const inner = numel(shape.slice(i + 1));
    const last = !axes.some((a) => a < start);
    const next = reducePass(current, outer, reduce, inner, op, last ? pendingScale : 1);
    if (current !== x) current.dispose();
    current = next;
    shape = [...shape.slice(0, start), ...new Array(i + 1 - start).fill(1), ...shape.slice(i + 1)];
    i = start - 1;
  }
  if (current === x) return binaryKernel('copy', x, x);
  const result = current.viewAs(shape);
  current.dispose();
  return result;
}

function outputShape(shape: Shape, axes: readonly number[], keepDims: boolean): number[] {
  return keepDims ? keptShape(shape, axes) : shape.filter((_, i) => !axes.includes(i));
}

function finish(y: Tensor, shape: Shape): Tensor {
  const r = y.viewAs(shape);
  y.dispose();
  return r;
}

export const sum = defineOp('sum', {
  forward: (ctx, x: Tensor, axes?: number | readonly number[], keepDims: boolean = false) => {
    const a = normalizeAxes(x.shape, axes);
    ctx.info.xShape = x.shape;
    ctx.info.kept = keptShape(x.shape, a);
    return finish(reduceKernel(x, a, 'sum', 1), outputShape(x.shape, a, keepDims));
  },
  backward: (ctx, dy) => {
    const k = dy.viewAs(ctx.info.kept as Shape);
    const dx = broadcastTo(k, ctx.info.xShape as Shape);
    k.dispose();
    return [dx];
  },
});

export const mean = defineOp('mean', {
  forward: (ctx, x: Tensor, axes?: number | readonly number[], keepDims: boolean = false) => {
    const a = normalizeAxes(x.shape, axes);
    const count = numel(a.map((i) => x.shape[i]));
    ctx.info.xShape = x.shape;
    ctx.info.kept = keptShape(x.shape, a);
    ctx.info.count = count;
    return finish(reduceKernel(x, a, 'sum', 1 / count), outputShape(x.shape, a, keepDims));
  },
  backward: (ctx, dy) => {
    const k = dy.viewAs(ctx.info.kept as Shape);
    const dx = broadcastTo(k, ctx.info.xShape as Shape);
    k.dispose();
    const scaled = unaryKernel('scale', dx, 1 / (ctx.info.count as number));
    dx.dispose();
    return [scaled];
  },
});

/** Maximum over axes; the gradient is shared equally among tied maxima (as torch.amax). */
export const max = defineOp('max', {
  forward: (ctx, x: Tensor, axes?: number | readonly number[], keepDims: boolean = false) => {
    const a = normalizeAxes(x.shape, axes);
    // Owned too: the output is a view of it, and under noGrad outside a scope nothing else would release it.
    const kept = ctx.own(reduceKernel(x, a, 'max', 1));
    ctx.save(x, kept);
    ctx.info.axes = a;
    const out = kept.viewAs(outputShape(x.shape, a, keepDims));
    return out;
  },
  backward: (ctx, dy) => {
    const [x, kept] = ctx.saved;
    const axes = ctx.info.axes as number[];
    const mask = binaryKernel('equal', x, kept, x.shape);
    const count = reduceKernel(mask, axes, 'sum', 1);
    const dyKept = dy.viewAs(kept.shape);
    const share = binaryKernel('div', dyKept, count);
    const dx = binaryKernel('mul', mask, share, x.shape);
    for (const t of [mask, count, dyKept, share]) t.dispose();
    return [dx];
  },
});

/** Sums `x` down to `shape` (the inverse of broadcasting); used by the gradients of broadcast ops. */
export function sumTo(x: Tensor, shape: Shape): Tensor {
  const offset = x.rank - shape.length;
  if (offset < 0) throw new Error(`sumTo: cannot sum ${x.describe()} to the larger shape ${formatShape(shape)}`);
  const axes: number[] = [];
  for (let i = 0; i < x.rank; i++) {
    const target = i < offset ? 1 : shape[i - offset];
    if (i < offset || (target === 1 && x.shape[i] !== 1)) axes.push(i);
    else if (target !== x.shape[i]) throw new Error(`sumTo: ${x.describe()} does not broadcast from ${formatShape(shape)}`);
  }
  return finish(reduceKernel(x, axes, 'sum', 1), shape);
}
