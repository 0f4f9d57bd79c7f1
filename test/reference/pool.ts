/**
 * Float64 reference for src/ops/pool.ts: avgPool2d and maxPool2d over [N, C, H, W] with a square
 * window, as PyTorch's AvgPool2d (count_include_pad=True: padding counts as zeros, the divisor is
 * always k²) and MaxPool2d (padding never wins: it is −∞), and the global average pool.
 * Max-pool backward gives a window's gradient to its FIRST maximum in row-major order (PyTorch's CPU
 * and CUDA kernels keep the first index whose value is > the running max), so ties are deterministic.
 */
import type { Shape } from '../../src/tensor/shape.js';

export interface PoolGeometry {
  batch: number;
  channels: number;
  inH: number;
  inW: number;
  outH: number;
  outW: number;
  kernel: number;
  stride: number;
  padding: number;
}

export function poolGeometry(shape: Shape, kernel: number, stride = kernel, padding = 0): PoolGeometry {
  const [batch, channels, inH, inW] = shape;
  const outH = Math.floor((inH + 2 * padding - kernel) / stride) + 1;
  const outW = Math.floor((inW + 2 * padding - kernel) / stride) + 1;
  return { batch, channels, inH, inW, outH, outW, kernel, stride, padding };
}

/**
 * For each output element, the input indices of its window (inside the image) in row-major order.
 * Both pools and both backwards are written over this one enumeration.
 */
function windows(g: PoolGeometry): number[][] {
  const out: number[][] = [];
  for (let nc = 0; nc < g.batch * g.channels; nc++) {
    for (let oy = 0; oy < g.outH; oy++) {
      for (let ox = 0; ox < g.outW; ox++) {
        const members: number[] = [];
        for (let ky = 0; ky < g.kernel; ky++) {
          for (let kx = 0; kx < g.kernel; kx++) {
            const iy = oy * g.stride - g.padding + ky;
            const ix = ox * g.stride - g.padding + kx;
            if (iy >= 0 && ix >= 0 && iy < g.inH && ix < g.inW) members.push((nc * g.inH + iy) * g.inW + ix);
          }
        }
        out.push(members);
      }
    }
  }
  return out;
}

export function avgPool2d(x: ArrayLike<number>, shape: Shape, kernel: number, stride = kernel, padding = 0): Float64Array {
  const g = poolGeometry(shape, kernel, stride, padding);
  return Float64Array.from(windows(g), (members) => members.reduce((s, i) => s + x[i], 0) / (kernel * kernel));
}

export function maxPool2d(x: ArrayLike<number>, shape: Shape, kernel: number, stride = kernel, padding = 0): Float64Array {
  const g = poolGeometry(shape, kernel, stride, padding);
  return Float64Array.from(windows(g), (members) => members.reduce((m, i) => Math.max(m, x[i]), -Infinity));
}

/** dx of maxPool2d: each window's dy goes to its first maximum. */
export function maxPool2dBackward(
  x: ArrayLike<number>,
  shape: Shape,
  dy: ArrayLike<number>,
  kernel: number,
  stride = kernel,
  padding = 0,
): Float64Array {
  const g = poolGeometry(shape, kernel, stride, padding);
  const dx = new Float64Array(x.length);
  windows(g).forEach((members, o) => {
    let best = members[0];
    for (const i of members) if (x[i] > x[best]) best = i;
    dx[best] += dy[o];
  });
  return dx;
}

/** [N, C, H, W] → [N, C]: the mean over positions. */
export function globalAvgPool(x: ArrayLike<number>, shape: Shape): Float64Array {
  const [batch, channels, h, w] = shape;
  const y = new Float64Array(batch * channels);
  for (let i = 0; i < x.length; i++) y[Math.floor(i / (h * w))] += x[i] / (h * w);
  return y;
}

export function globalAvgPoolBackward(dy: ArrayLike<number>, shape: Shape): Float64Array {
  const [batch, channels, h, w] = shape;
  return Float64Array.from({ length: batch * channels * h * w }, (_, i) => dy[Math.floor(i / (h * w))] / (h * w));
}
