/**
 * Pooling: avgPool2d and maxPool2d with square windows (shaders/pool.wgsl), and the global average
 * pool of the ResNet heads (a mean over the spatial axes).
 */
import { defineOp } from '../autograd/function.js';
import { gpu, grid1d } from '../gpu/encoder.js';
import { Tensor } from '../tensor/tensor.js';
import { mean } from './reduce.js';

const WG = 256;

export interface Pool2dOptions {
  stride?: number;
  padding?: number;
}

function pool(kind: 'avg' | 'max') {
  const OP = kind === 'avg' ? 0 : 1;
  return defineOp(`${kind}Pool2d`, {
    forward: (ctx, x: Tensor, kernel: number, options: Pool2dOptions = {}) => {
      if (x.rank !== 4) throw new Error(`${kind}Pool2d: expected [batch, channels, h, w], got ${x.describe()}`);
      const stride = options.stride ?? kernel;
      const padding = options.padding ?? 0;
      const [batch, channels, inH, inW] = x.shape;
      const outH = Math.floor((inH + 2 * padding - kernel) / stride) + 1;
      const outW = Math.floor((inW + 2 * padding - kernel) / stride) + 1;
      if (outH < 1 || outW < 1) throw new Error(`${kind}Pool2d: a ${kernel}×${kernel} window does not fit ${x.describe()}`);
      const dims = { batch, channels, in_h: inH, in_w: inW, out_h: outH, out_w: outW, kernel, stride, padding };
      const y = Tensor.empty([batch, channels, outH, outW]);
      const rt = gpu();
      rt.dispatch(rt.kernel({ family: 'pool', entry: 'forward', bindings: ['dims', 'x', 'y'], overrides: { OP } }), { x: x.buffer, y: y.buffer }, dims, grid1d(y.size, WG));
      ctx.save(x);
      ctx.info.dims = dims;
      return y;
    },
    backward: (ctx, dy) => {
      const [x] = ctx.saved;
      const dx = Tensor.empty(x.shape);
      const rt = gpu();
      rt.dispatch(
        rt.kernel({ family: 'pool', entry: 'backward', bindings: ['dims', 'x', 'dy', 'dx'], overrides: { OP } }),
        { x: x.buffer, dy: dy.buffer, dx: dx.buffer },
        ctx.info.dims as Record<string, number>,
        grid1d(dx.size, WG),
      );
      return [dx];
    },
  });
}

export const avgPool2d = pool('avg');
export const maxPool2d = pool('max');

/** [N, C, H, W] → [N, C]: the mean over all positions. */
export function globalAvgPool(x: Tensor): Tensor {
  if (x.rank !== 4) throw new Error(`globalAvgPool: expected [batch, channels, h, w], got ${x.describe()}`);
  return mean(x, [2, 3]);
}
