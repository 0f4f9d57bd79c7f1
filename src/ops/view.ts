/** Shape-only ops: reshape and flatten share the buffer; the gradient is reshaped back. */
import { defineOp } from '../autograd/function.js';
import { Tensor } from '../tensor/tensor.js';
import { numel, formatShape, type Shape } from '../tensor/shape.js';

export const reshape = defineOp('reshape', {
  forward: (ctx, x: Tensor, shape: Shape) => {
    const resolved = resolveShape(x, shape);
    ctx.info.shape = x.shape;
    return x.viewAs(resolved);
  },
  backward: (ctx, dy) => [dy.viewAs(ctx.info.shape as Shape)],
});

/** Flattens every axis after the first: [N, ...] → [N, rest]. */
export function flatten(x: Tensor): Tensor {
  return reshape(x, [x.shape[0], -1]);
}

function resolveShape(x: Tensor, shape: Shape): number[] {
  const unknown = shape.filter((d) => d === -1).length;
  if (unknown > 1) throw new Error(`reshape: at most one -1 allowed in ${formatShape(shape)}`);
  const known = numel(shape.filter((d) => d !== -1));
  const resolved = shape.map((d) => (d === -1 ? x.size / known : d));
  if (numel(resolved) !== x.size || resolved.some((d) => !Number.isInteger(d))) {
    throw new Error(`reshape: cannot reshape ${x.describe()} to ${formatShape(shape)}`);
  }
  return resolved;
}
