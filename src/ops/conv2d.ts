/**
 * 2-D convolution, NCHW, f32: forward and both gradients (shaders/conv2d.wgsl, entry points forward,
 * backward_input, backward_weight). The weight gradient is a split reduction: partial sums per group of
 * samples, then a deterministic sum of the partials (reduce.wgsl).
 */
import { defineOp } from '../autograd/function.js';
import { gpu, grid1d } from '../gpu/encoder.js';
import { Tensor } from '../tensor/tensor.js';
import { formatShape, type Shape } from '../tensor/shape.js';
import { add } from './elementwise.js';
import { reshape } from './view.js';
import { reduceAxisKernel } from './reduce.js';

export interface Conv2dOptions {
  stride?: number;
  padding?: number;
}

export interface Conv2dGeometry {
  batch: number;
  inChannels: number;
  outChannels: number;
  inH: number;
  inW: number;
  outH: number;
  outW: number;
  kernelH: number;
  kernelW: number;
  stride: number;
  padding: number;
}

const WG = 64;
const CO_BLOCK = 4;
const X_BLOCK = 4;

export function conv2dGeometry(x: Shape, w: Shape, options: Conv2dOptions = {}): Conv2dGeometry {
  const stride = options.stride ?? 1;
  const padding = options.padding ?? 0;
  if (x.length !== 4) throw new Error(`conv2d: input must be [batch, channels, height, width], got ${formatShape(x)}`);
  if (w.length !== 4) throw new Error(`conv2d: weight must be [out, in, kh, kw], got ${formatShape(w)}`);
  if (x[1] !== w[1]) {
    throw new Error(`conv2d: input ${formatShape(x)} has ${x[1]} channels, weight ${formatShape(w)} expects ${w[1]}`);
  }
  if (!Number.isInteger(stride) || stride < 1) throw new Error(`conv2d: stride must be an integer ≥ 1, got ${stride}`);
  if (!Number.isInteger(padding) || padding < 0) throw new Error(`conv2d: padding must be an integer ≥ 0, got ${padding}`);
  const outH = Math.floor((x[2] + 2 * padding - w[2]) / stride) + 1;
  const outW = Math.floor((x[3] + 2 * padding - w[3]) / stride) + 1;
  if (outH < 1 || outW < 1) {
    throw new Error(`conv2d: a ${w[2]}×${w[3]} kernel with padding ${padding} does not fit the ${x[2]}×${x[3]} input`);
  }
  return {
    batch: x[0], inChannels: x[1], outChannels: w[0], inH: x[2], inW: x[3],
    outH, outW, kernelH: w[2], kernelW: w[3], stride, padding,
  };
}

function uniforms(g: Conv2dGeometry, samplesPerSplit = 1): Record<string, number> {
  return {
    batch: g.batch, in_channels: g.inChannels, out_channels: g.outChannels,
    in_h: g.inH, in_w: g.inW, out_h: g.outH, out_w: g.outW,
    kernel_h: g.kernelH, kernel_w: g.kernelW, stride: g.stride, padding: g.padding,
    samples_per_split: samplesPerSplit,
  };
}

const spec = (entry: string, bindings: string[]) => ({ family: 'conv2d' as const, entry, bindings });

export function conv2dForwardKernel(x: Tensor, w: Tensor, g: Conv2dGeometry): Tensor {
  const y = Tensor.empty([g.batch, g.outChannels, g.outH, g.outW]);
  const count = g.batch * g.outH * Math.ceil(g.outW / X_BLOCK) * Math.ceil(g.outChannels / CO_BLOCK);
  const rt = gpu();
  rt.dispatch(rt.kernel(spec('forward', ['dims', 'x', 'w', 'y'])), { x: x.buffer, w: w.buffer, y: y.buffer }, uniforms(g), grid1d(count, WG));
  return y;
}

export function conv2dBackwardInputKernel(dy: Tensor, w: Tensor, g: Conv2dGeometry): Tensor {
  const dx = Tensor.empty([g.batch, g.inChannels, g.inH, g.inW]);
  const count = g.batch * g.inH * Math.ceil(g.inW / X_BLOCK) * g.inChannels;
  const rt = gpu();
  rt.dispatch(rt.kernel(spec('backward_input', ['dims', 'dy', 'w', 'dx'])), { dy: dy.buffer, w: w.buffer, dx: dx.buffer }, uniforms(g), grid1d(count, WG));
  return dx;
}

export function conv2dBackwardWeightKernel(dy: Tensor, x: Tensor, g: Conv2dGeometry): Tensor {
  const taps = g.inChannels * g.kernelH * g.kernelW;
  const weights = g.outChannels * taps;
  // Enough partial sums to keep every core busy, each over at least a few samples.
  const samplesPerSplit = Math.max(1, Math.ceil(g.batch / Math.max(1, Math.floor(8192 / (Math.ceil(g.outChannels / CO_BLOCK) * taps)))));
  const splits = Math.ceil(g.batch / samplesPerSplit);
  const partial = Tensor.empty([splits, weights]);
  const count = splits * Math.ceil(g.outChannels / CO_BLOCK) * taps;
  const rt = gpu();
  rt.dispatch(
    rt.kernel(spec('backward_weight', ['dims', 'dy', 'x', 'dw'])),
    { dy: dy.buffer, x: x.buffer, dw: partial.buffer },
    uniforms(g, samplesPerSplit),
    grid1d(count, WG),
  );
  const summed = reduceAxisKernel(partial, 1, splits, weights, 'sum');
  partial.dispose();
  const dw = summed.viewAs([g.outChannels, g.inChannels, g.kernelH, g.kernelW]);
  summed.dispose();
  return dw;
}

const conv2dNoBias = defineOp('conv2d', {
  forward: (ctx, x: Tensor, w: Tensor, options: Conv2dOptions = {}) => {
    const g = conv2dGeometry(x.shape, w.shape, options);
    ctx.save(x, w);
    ctx.info.geometry = g;
    return conv2dForwardKernel(x, w, g);
  },
  backward: (ctx, dy) => {
    const [x, w] = ctx.saved;
    const g = ctx.info.geometry as Conv2dGeometry;
    return [
      ctx.needsGrad[0] ? conv2dBackwardInputKernel(dy, w, g) : null,
      ctx.needsGrad[1] ? conv2dBackwardWeightKernel(dy, x, g) : null,
    ];
  },
});

/** y = conv2d(x, w) (+ bias broadcast over positions). */
export function conv2d(x: Tensor, w: Tensor, bias: Tensor | null = null, options: Conv2dOptions = {}): Tensor {
  const y = conv2dNoBias(x, w, options);
  if (!bias) return y;
  if (bias.rank !== 1 || bias.shape[0] !== w.shape[0]) throw new Error(`conv2d: bias must be [${w.shape[0]}], got ${bias.describe()}`);
  const b = reshape(bias, [1, bias.shape[0], 1, 1]);
  return add(y, b);
}
