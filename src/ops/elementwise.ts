/**
 * Elementwise ops with NumPy broadcasting: add, sub, mul, div, scale, addScalar, relu, exp, log, neg,
 * and their gradients (shaders/elementwise.wgsl). The gradient of a broadcast input is the output
 * gradient summed back to the input's shape.
 */
import { defineOp } from '../autograd/function.js';
import { Tensor } from '../tensor/tensor.js';
import { broadcastShapes, broadcastStrides, sameShape, formatShape, type Shape } from '../tensor/shape.js';
import { run1d } from './kernels.js';
import { sumTo } from './reduce.js';

// The OP override of shaders/elementwise.wgsl.
const BINARY = { add: 0, sub: 1, mul: 2, div: 3, equal: 4, reluMask: 5, copy: 6, addRelu: 7 } as const;
const UNARY = { relu: 0, exp: 1, log: 2, neg: 3, scale: 4, addScalar: 5 } as const;
type BinaryOp = keyof typeof BINARY;
type UnaryOp = keyof typeof UNARY;

const MAX_RANK = 6;

function checkF32(op: string, ...ts: Tensor[]): void {
  for (const t of ts) if (t.dtype !== 'f32') throw new Error(`${op}: expected f32 tensors, got ${t.describe()}`);
}

/** Whether `b` broadcast to `shape` is `b` repeated whole: its shape (with leading 1s dropped) is a suffix of `shape`. */
function repeatsAlongLeadingAxes(b: Shape, shape: Shape): boolean {
  let start = 0;
  while (start < b.length && b[start] === 1) start++;
  const core = b.slice(start);
  return core.length > 0 && core.length < shape.length && sameShape(core, shape.slice(shape.length - core.length));
}

/** Runs a binary kernel, broadcasting when the shapes differ. */
export function binaryKernel(op: BinaryOp, a: Tensor, b: Tensor, shape: Shape = broadcastShapes(a.shape, b.shape)): Tensor {
  checkF32(op, a, b);
  if (shape.length > MAX_RANK) throw new Error(`${op}: tensors of rank > ${MAX_RANK} are not supported`);
  const y = Tensor.empty(shape);
  const overrides = { OP: BINARY[op] };
  const buffers = { a: a.buffer, b: b.buffer, y: y.buffer };
  if (sameShape(a.shape, shape) && sameShape(b.shape, shape)) {
    runSameShape('binary_same', overrides, buffers, {}, y.size);
    return y;
  }
  // a full-size, b repeated along leading axes only (a bias map added to every sample): b's index is
  // the output's modulo b's size, four values at a time.
  if (sameShape(a.shape, shape) && b.size % 4 === 0 && repeatsAlongLeadingAxes(b.shape, shape)) {
    run1d(
      { family: 'elementwise', entry: 'binary_tiled_vec4', bindings: ['dims', 'a4', 'b4', 'y4'], overrides },
      { a4: a.buffer, b4: b.buffer, y4: y.buffer },
      { n: y.size / 4, out0: b.size / 4 },
      y.size / 4,
    );
    return y;
  }
  const padded = [...new Array(MAX_RANK - shape.length).fill(1), ...shape];
  const sa = [...new Array(MAX_RANK - shape.length).fill(0), ...broadcastStrides(a.shape, shape)];
  const sb = [...new Array(MAX_RANK - shape.length).fill(0), ...broadcastStrides(b.shape, shape)];
  const params: Record<string, number> = { n: y.size };
  for (let d = 0; d < MAX_RANK; d++) {
    params[`out${d}`] = padded[d];
    params[`a${d}`] = sa[d];
    params[`b${d}`] = sb[d];
  }
  run1d({ family: 'elementwise', entry: 'binary_broadcast', bindings: ['dims', 'a', 'b', 'y'], overrides }, buffers, params, y.size);
  return y;
}

/**
 * One of the kernels over `count` elements in the same layout (binary_same, unary, accumulate, fill):
 * its _vec4 entry point, four elements per invocation, when the count allows.
 */
function runSameShape(
  entry: 'binary_same' | 'unary' | 'accumulate' | 'fill',
  overrides: Record<string, number>,
  buffers: Record<string, GPUBuffer>,
  params: Record<string, number>,
  count: number,
): void {
  const names = Object.keys(buffers);
  if (count % 4 !== 0) {
    run1d({ family: 'elementwise', entry, bindings: ['dims', ...names], overrides }, buffers, { ...params, n: count }, count);
    return;
  }
  const vec4Buffers = Object.fromEntries(Object.entries(buffers).map(([name, buffer]) => [`${name}4`, buffer]));
  run1d(
    { family: 'elementwise', entry: `${entry}_vec4`, bindings: ['dims', ...Object.keys(vec4Buffers)], overrides },
    vec4Buffers,
    { ...params, n: count / 4 },
    count / 4,
  );
}

export function unaryKernel(op: UnaryOp, x: Tensor, alpha = 0): Tensor {
  checkF32(op, x);
  const y = Tensor.empty(x.shape);
  runSameShape('unary', { OP: UNARY[op] }, { a: x.buffer, y: y.buffer }, { alpha }, y.size);
  return y;
}

/** Gradient of a broadcast input: dy summed back to the input's shape. */
function reduceGrad(dy: Tensor, shape: Shape): Tensor {
  return sameShape(dy.shape, shape) ? dy : sumTo(dy, shape);
}

function saveShapes(ctx: { info: Record<string, unknown> }, a: Tensor, b: Tensor): void {
  ctx.info.shapes = [a.shape, b.shape];
}

export const add = defineOp('add', {
  forward: (ctx, a: Tensor, b: Tensor) => {
    saveShapes(ctx, a, b);
    return binaryKernel('add', a, b);
  },
  backward: (ctx, dy) => {
    const [a, b] = ctx.info.shapes as [Shape, Shape];
    return [ctx.needsGrad[0] ? reduceGrad(dy, a) : null, ctx.needsGrad[1] ? reduceGrad(dy, b) : null];
  },
});

export const sub = defineOp('sub', {
  forward: (ctx, a: Tensor, b: Tensor) => {
    saveShapes(ctx, a, b);
    return binaryKernel('sub', a, b);
  },
  backward: (ctx, dy) => {
    const [a, b] = ctx.info.shapes as [Shape, Shape];
    return [ctx.needsGrad[0] ? reduceGrad(dy, a) : null, ctx.needsGrad[1] ? reduceGrad(unaryKernel('neg', dy), b) : null];
  },
});

export const mul = defineOp('mul', {
  forward: (ctx, a: Tensor, b: Tensor) => {
    ctx.save(a, b);
    return binaryKernel('mul', a, b);
  },
  backward: (ctx, dy) => {
    const [a, b] = ctx.saved;
    return [
      ctx.needsGrad[0] ? reduceGrad(binaryKernel('mul', dy, b), a.shape) : null,
      ctx.needsGrad[1] ? reduceGrad(binaryKernel('mul', dy, a), b.shape) : null,
    ];
  },
});

export const div = defineOp('div', {
  forward: (ctx, a: Tensor, b: Tensor) => {
    saveShapes(ctx, a, b);
    const y = binaryKernel('div', a, b);
    ctx.save(b, y);
    return y;
  },
  backward: (ctx, dy) => {
    const [b, y] = ctx.saved;
    const da = ctx.needsGrad[0] ? binaryKernel('div', dy, b) : null;
    // d(a/b)/db = -y / b
    let db: Tensor | null = null;
    if (ctx.needsGrad[1]) {
      const t = binaryKernel('mul', dy, y);
      const u = binaryKernel('div', t, b);
      t.dispose();
      db = unaryKernel('neg', u);
      u.dispose();
    }
    const [aShape] = ctx.info.shapes as [Shape, Shape];
    return [da ? reduceGrad(da, aShape) : null, db ? reduceGrad(db, b.shape) : null];
  },
});

export const scale = defineOp('scale', {
  forward: (ctx, x: Tensor, factor: number) => {
    ctx.info.factor = factor;
    return unaryKernel('scale', x, factor);
  },
  backward: (ctx, dy) => [unaryKernel('scale', dy, ctx.info.factor as number)],
});

export const addScalar = defineOp('addScalar', {
  forward: (_ctx, x: Tensor, value: number) => unaryKernel('addScalar', x, value),
  backward: (_ctx, dy) => [unaryKernel('scale', dy, 1)],
});

export const neg = defineOp('neg', {
  forward: (_ctx, x: Tensor) => unaryKernel('neg', x),
  backward: (_ctx, dy) => [unaryKernel('neg', dy)],
});

export const relu = defineOp('relu', {
  forward: (ctx, x: Tensor) => {
    const y = unaryKernel('relu', x);
    ctx.save(y);
    return y;
  },
  backward: (ctx, dy) => [binaryKernel('reluMask', dy, ctx.saved[0])],
});

/** relu(a + b) in one pass: the residual join of a ResNet block. Same shapes only. */
export const addRelu = defineOp('addRelu', {
  forward: (ctx, a: Tensor, b: Tensor) => {
    if (!sameShape(a.shape, b.shape)) throw new Error(`addRelu: shapes differ: ${a.describe()} and ${b.describe()}`);
    const y = binaryKernel('addRelu', a, b);
    ctx.save(y);
    return y;
  },
  backward: (ctx, dy) => {
    // The same gradient for both inputs: backward() shares it between them without a copy.
    const g = binaryKernel('reluMask', dy, ctx.saved[0]);
    return [g, g];
  },
});

export const exp = defineOp('exp', {
  forward: (ctx, x: Tensor) => {
    const y = unaryKernel('exp', x);
    ctx.save(y);
    return y;
  },
  backward: (ctx, dy) => [binaryKernel('mul', dy, ctx.saved[0])],
});

export const log = defineOp('log', {
  forward: (ctx, x: Tensor) => {
    ctx.save(x);
    return unaryKernel('log', x);
  },
  backward: (ctx, dy) => [binaryKernel('div', dy, ctx.saved[0])],
});

/** 1 where a == b, else 0 (not differentiable). */
export const equal = defineOp('equal', { forward: (_ctx, a: Tensor, b: Tensor) => binaryKernel('equal', a, b), backward: 'none' });

/** `x` stretched to `shape` by broadcasting (a copy). */
export const broadcastTo = defineOp('broadcastTo', {
  forward: (ctx, x: Tensor, shape: Shape) => {
    const out = broadcastShapes(x.shape, shape);
    if (!sameShape(out, shape)) throw new Error(`broadcastTo: ${x.describe()} cannot be broadcast to ${formatShape(shape)}`);
    ctx.info.shape = x.shape;
    return binaryKernel('copy', x, x, shape);
  },
  backward: (ctx, dy) => [reduceGrad(dy, ctx.info.shape as Shape)],
});

/** A copy of `x` (no graph). */
export function clone(x: Tensor): Tensor {
  return unaryKernel('scale', x, 1);
}

/** dst += src in place (no graph): gradient accumulation. */
export function accumulate_(dst: Tensor, src: Tensor): void {
  if (!sameShape(dst.shape, src.shape)) throw new Error(`accumulate: ${dst.describe()} += ${src.describe()}: shapes differ`);
  runSameShape('accumulate', {}, { a: src.buffer, y: dst.buffer }, {}, dst.size);
}

/** A new tensor filled with `value`. */
export function fill(shape: Shape, value: number): Tensor {
  const y = Tensor.empty(shape);
  runSameShape('fill', {}, { y: y.buffer }, { alpha: value }, y.size);
  return y;
}

export function zeros(shape: Shape): Tensor {
  return fill(shape, 0);
}

export function ones(shape: Shape): Tensor {
  return fill(shape, 1);
}
