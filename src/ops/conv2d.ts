/**
 * 2-D convolution, NCHW, f32: forward and both gradients (shaders/conv2d.wgsl, entry points forward,
 * backward_input, backward_weight). The weight gradient is a split reduction: partial sums per group of
 * samples, then a deterministic sum of the partials (reduce.wgsl). Where the device has subgroups of
 * one fixed size, the kernels of shaders/conv2d_subgroup.wgsl are used instead (same entry points), and
 * 3×3 padding-1 convolutions with output rows of a multiple of 4 go through its vec4 kernels
 * (forward_3x3 and backward_weight_3x3 at stride 1 and 2; the stride-1 input gradient is a forward_3x3, the
 * stride-2 one backward_input_3x3_s2).
 */
import { defineOp } from '../autograd/function.js';
import { gpu, grid1d } from '../gpu/encoder.js';
import { Tensor } from '../tensor/tensor.js';
import { formatShape, sameShape, type Shape } from '../tensor/shape.js';
import { add, binaryKernel } from './elementwise.js';
import { sumTo } from './reduce.js';
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

/** Which kernels conv2d uses: the subgroup ones where the device allows, or always the portable ones. */
export type Conv2dKernelPath = 'auto' | 'portable';
let kernelPath: Conv2dKernelPath = 'auto';

/** Forces the portable kernels (tests and benchmarks compare both paths); returns the previous setting. */
export function setConv2dKernelPath(path: Conv2dKernelPath): Conv2dKernelPath {
  const previous = kernelPath;
  kernelPath = path;
  return previous;
}

/** Whether the next conv2d dispatch uses shaders/conv2d_subgroup.wgsl. */
export function conv2dUsesSubgroups(): boolean {
  const rt = gpu();
  return kernelPath === 'auto' && rt.subgroupSize > 0 && rt.hasFamily('conv2d_subgroup');
}

const WG = 64;
// Must match the shaders: X_MAX inputs per row in forward, KW_MAX taps per row in backward_weight,
// the subgroup kernels' TM (16 rows × 4 columns measured as fast as 8 × 8, with fewer wasted columns).
const X_MAX = 32;
const KW_MAX = 8;
const SUBGROUP_TM = 16;

interface Tiling {
  family: 'conv2d' | 'conv2d_subgroup';
  /** Channel rows per workgroup. */
  tm: number;
  overrides: Record<string, number>;
}

/** Pipeline constants for one entry point; `tn` columns per invocation, `tm` rows for the portable path. */
function tiling(g: Conv2dGeometry, tn: number, portableTm: number): Tiling {
  if (g.kernelW > KW_MAX) throw new Error(`conv2d: kernels wider than ${KW_MAX} are not supported (got ${g.kernelH}×${g.kernelW})`);
  // The forward keeps (tn − 1)·stride + kw inputs of a row in registers.
  while (tn > 1 && (tn - 1) * g.stride + g.kernelW > X_MAX) tn--;
  const shape = { WG, KH: g.kernelH, KW: g.kernelW, STRIDE: g.stride, TN: tn };
  if (conv2dUsesSubgroups()) {
    return { family: 'conv2d_subgroup', tm: SUBGROUP_TM, overrides: { ...shape, TM: SUBGROUP_TM, SG: gpu().subgroupSize } };
  }
  return { family: 'conv2d', tm: portableTm, overrides: { ...shape, TM: portableTm } };
}

/**
 * Whether a convolution of this geometry runs through the vec4 3×3 kernels: 3×3, padding 1, one of `strides`
 * with the input exactly stride × the output,
 * out_w a multiple of 4, and a subgroup covering whole rows (the edge columns come from neighbouring lanes).
 */
function fits3x3(g: Conv2dGeometry, strides: readonly number[] = [1]): boolean {
  if (!conv2dUsesSubgroups()) return false;
  if (g.kernelH !== 3 || g.kernelW !== 3 || g.padding !== 1 || g.outW % 4 !== 0 || !strides.includes(g.stride)) return false;
  if (g.inW !== g.stride * g.outW || g.inH !== g.stride * g.outH) return false;
  return gpu().subgroupSize % (g.outW / 4) === 0;
}

/**
 * Channel rows per workgroup for the vec4 backward kernels: at most SUBGROUP_TM, split evenly (11 or 23
 * channels run 11 or 2 × 12 rows). The vec4 forward pads to full SUBGROUP_TM blocks instead (forward3x3).
 */
function rowBlock(channels: number): number {
  return Math.ceil(channels / Math.ceil(channels / SUBGROUP_TM));
}

/** Weights in the packed layout of the 3×3 kernels; `flip` gives those of the stride-1 input gradient. */
function pack3x3(w: Tensor, g: Conv2dGeometry, flip: boolean): Tensor {
  const rt = gpu();
  const packed = Tensor.empty([g.outChannels * g.inChannels * 12]);
  const kernel = rt.kernel({ family: 'conv2d', entry: 'pack_3x3', bindings: ['dims', 'w', 'wt'], overrides: { WG, FLIP: flip ? 1 : 0 } });
  rt.dispatch(kernel, { w: w.buffer, wt: packed.buffer }, uniforms(g), grid1d(packed.size, WG));
  return packed;
}

function forward3x3(x: Tensor, packed: Tensor, g: Conv2dGeometry, biasMap: Tensor | null = null): Tensor {
  const rt = gpu();
  const y = Tensor.empty([g.batch, g.outChannels, g.outH, g.outW]);
  const tiles = g.batch * g.outH * (g.outW / 4);
  // Always full blocks of SUBGROUP_TM rows, the last one padded: on lavapipe an 8-row block costs what
  // a 16-row one does and 10- or 12-row blocks up to twice as much (the per-step loads and shuffles set
  // the cost, not the rows' multiply-adds), so shorter blocks lost to padding (measured per shape, batch 128).
  const tm = SUBGROUP_TM;
  const kernel = rt.kernel({
    family: 'conv2d_subgroup',
    entry: biasMap ? 'forward_3x3_bias_map' : 'forward_3x3',
    bindings: biasMap ? ['dims', 'x4', 'w4', 'bias_map4', 'y4'] : ['dims', 'x4', 'w4', 'y4'],
    overrides: { WG, SG: rt.subgroupSize, TM: tm, STRIDE: g.stride },
  });
  const buffers: Record<string, GPUBuffer> = { x4: x.buffer, w4: packed.buffer, y4: y.buffer };
  if (biasMap) buffers.bias_map4 = biasMap.buffer;
  rt.dispatch(kernel, buffers, uniforms(g), [Math.ceil(tiles / WG), Math.ceil(g.outChannels / tm)]);
  return y;
}

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

/** y = conv2d(x, w), plus `biasMap` [out_channels, out_h, out_w] added to every sample when given. */
export function conv2dForwardKernel(x: Tensor, w: Tensor, g: Conv2dGeometry, biasMap: Tensor | null = null): Tensor {
  if (fits3x3(g, [1, 2])) {
    const packed = pack3x3(w, g, false);
    const y = forward3x3(x, packed, g, biasMap);
    packed.dispose();
    return y;
  }
  if (biasMap) {
    const y = conv2dForwardKernel(x, w, g);
    const withMap = binaryKernel('add', y, biasMap);
    y.dispose();
    return withMap;
  }
  const y = Tensor.empty([g.batch, g.outChannels, g.outH, g.outW]);
  const t = tiling(g, conv2dUsesSubgroups() ? 4 : 8, 4);
  const tn = t.overrides.TN;
  const tiles = g.batch * g.outH * Math.ceil(g.outW / tn);
  const rt = gpu();
  const kernel = rt.kernel({ family: t.family, entry: 'forward', bindings: ['dims', 'x', 'w', 'y'], overrides: t.overrides });
  rt.dispatch(kernel, { x: x.buffer, w: w.buffer, y: y.buffer }, uniforms(g), [Math.ceil(tiles / WG), Math.ceil(g.outChannels / t.tm)]);
  return y;
}

export function conv2dBackwardInputKernel(dy: Tensor, w: Tensor, g: Conv2dGeometry): Tensor {
  const rt = gpu();
  const transposedPadding = g.kernelH - 1 - g.padding;
  if (g.stride === 1 && g.kernelH === g.kernelW && transposedPadding >= 0) {
    // At stride 1, dx is the forward convolution of dy with wt[ci, co] = w[co, ci] rotated by 180°
    // and padding k − 1 − p: the fast forward kernel does the work.
    const transposed: Conv2dGeometry = {
      ...g, inChannels: g.outChannels, outChannels: g.inChannels,
      inH: g.outH, inW: g.outW, outH: g.inH, outW: g.inW, padding: transposedPadding,
    };
    if (fits3x3(transposed)) {
      const packed = pack3x3(w, g, true);
      const dx = forward3x3(dy, packed, transposed);
      packed.dispose();
      return dx;
    }
    const wt = Tensor.empty([g.inChannels, g.outChannels, g.kernelH, g.kernelW]);
    const flip = rt.kernel({
      family: 'conv2d', entry: 'backward_input_weights', bindings: ['dims', 'w', 'wt'],
      overrides: { WG, KH: g.kernelH, KW: g.kernelW },
    });
    rt.dispatch(flip, { w: w.buffer, wt: wt.buffer }, uniforms(g), grid1d(wt.size, WG));
    const dx = conv2dForwardKernel(dy, wt, transposed);
    wt.dispose();
    return dx;
  }
  const dx = Tensor.empty([g.batch, g.inChannels, g.inH, g.inW]);
  if (fits3x3(g, [2]) && rt.subgroupSize % (g.inW / 4) === 0) {
    const packed = pack3x3(w, g, false);
    const tm = rowBlock(g.inChannels);
    const kernel = rt.kernel({
      family: 'conv2d_subgroup', entry: 'backward_input_3x3_s2', bindings: ['dims', 'dy2', 'w4', 'dx'],
      overrides: { WG, SG: rt.subgroupSize, TM: tm },
    });
    const tiles = g.batch * (g.inH / 2) * (g.inW / 4);
    rt.dispatch(kernel, { dy2: dy.buffer, w4: packed.buffer, dx: dx.buffer }, uniforms(g), [Math.ceil(tiles / WG), Math.ceil(g.inChannels / tm), 2]);
    packed.dispose();
    return dx;
  }
  const t = tiling(g, 4, 4);
  // One grid layer per class of positions (iy mod stride, ix mod stride).
  const classH = Math.ceil(g.inH / g.stride);
  const classW = Math.ceil(g.inW / g.stride);
  const tiles = g.batch * classH * Math.ceil(classW / t.overrides.TN);
  const kernel = rt.kernel({ family: t.family, entry: 'backward_input', bindings: ['dims', 'dy', 'w', 'dx'], overrides: t.overrides });
  const grid = [Math.ceil(tiles / WG), Math.ceil(g.inChannels / t.tm), g.stride * g.stride] as const;
  rt.dispatch(kernel, { dy: dy.buffer, w: w.buffer, dx: dx.buffer }, uniforms(g), grid);
  return dx;
}

/** Workgroups (of any kernel) that keep both CPU threads, or a GPU's cores, busy. */
const TARGET_WORKGROUPS = 64;

export function conv2dBackwardWeightKernel(dy: Tensor, x: Tensor, g: Conv2dGeometry): Tensor {
  const rt = gpu();
  const t = tiling(g, 1, 8);
  // Columns are (ci, ky) kernel rows: pick the workgroup size that wastes the fewest lanes.
  const columns = g.inChannels * g.kernelH;
  const minimum = Math.max(8, t.family === 'conv2d_subgroup' ? rt.subgroupSize : 1);
  let wg = 64;
  for (const size of [32, 16, 8]) {
    if (size >= minimum && Math.ceil(columns / size) * size < Math.ceil(columns / wg) * wg) wg = size;
  }
  const vec4 = fits3x3(g, [1, 2]);
  const tm = vec4 ? rowBlock(g.outChannels) : t.tm;
  const blocks = Math.ceil(columns / wg) * Math.ceil(g.outChannels / tm);
  const samplesPerSplit = Math.ceil(g.batch / Math.min(g.batch, Math.ceil(TARGET_WORKGROUPS / blocks)));
  const splits = Math.ceil(g.batch / samplesPerSplit);
  const weights = g.outChannels * g.inChannels * g.kernelH * g.kernelW;
  const partial = Tensor.empty([splits, weights]);
  const kernel = rt.kernel({
    family: t.family,
    entry: vec4 ? 'backward_weight_3x3' : 'backward_weight',
    bindings: vec4 ? ['dims', 'dy4', 'x4', 'dw'] : ['dims', 'dy', 'x', 'dw'],
    overrides: vec4 ? { WG: wg, SG: rt.subgroupSize, TM: tm, STRIDE: g.stride } : { ...t.overrides, WG: wg },
  });
  rt.dispatch(
    kernel,
    vec4 ? { dy4: dy.buffer, x4: x.buffer, dw: partial.buffer } : { dy: dy.buffer, x: x.buffer, dw: partial.buffer },
    uniforms(g, samplesPerSplit),
    [Math.ceil(columns / wg), Math.ceil(g.outChannels / tm), splits],
  );
  if (splits === 1) {
    const dw = partial.viewAs([g.outChannels, g.inChannels, g.kernelH, g.kernelW]);
    partial.dispose();
    return dw;
  }
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

const conv2dBiasMapOp = defineOp('conv2dBiasMap', {
  forward: (ctx, x: Tensor, w: Tensor, biasMap: Tensor, options: Conv2dOptions = {}) => {
    const g = conv2dGeometry(x.shape, w.shape, options);
    if (!sameShape(biasMap.shape, [g.outChannels, g.outH, g.outW])) {
      throw new Error(`conv2d: bias map must be [${g.outChannels}, ${g.outH}, ${g.outW}] for input ${x.describe()}, got ${biasMap.describe()}`);
    }
    ctx.save(x, w);
    ctx.info.geometry = g;
    ctx.info.mapShape = biasMap.shape;
    return conv2dForwardKernel(x, w, g, biasMap);
  },
  backward: (ctx, dy) => {
    const [x, w] = ctx.saved;
    const g = ctx.info.geometry as Conv2dGeometry;
    return [
      ctx.needsGrad[0] ? conv2dBackwardInputKernel(dy, w, g) : null,
      ctx.needsGrad[1] ? conv2dBackwardWeightKernel(dy, x, g) : null,
      ctx.needsGrad[2] ? sumTo(dy, ctx.info.mapShape as Shape) : null,
    ];
  },
});

/**
 * y = conv2d(x, w) + biasMap, the map [out_channels, out_h, out_w] added to every sample: a compacted conv
 * whose constant input channels became a per-position bias (prune/compact.ts), in one pass where the
 * vec4 kernels apply.
 */
export function conv2dWithBiasMap(x: Tensor, w: Tensor, biasMap: Tensor, options: Conv2dOptions = {}): Tensor {
  return conv2dBiasMapOp(x, w, biasMap, options);
}

/** y = conv2d(x, w) (+ bias broadcast over positions). */
export function conv2d(x: Tensor, w: Tensor, bias: Tensor | null = null, options: Conv2dOptions = {}): Tensor {
  const y = conv2dNoBias(x, w, options);
  if (!bias) return y;
  if (bias.rank !== 1 || bias.shape[0] !== w.shape[0]) throw new Error(`conv2d: bias must be [${w.shape[0]}], got ${bias.describe()}`);
  const b = reshape(bias, [1, bias.shape[0], 1, 1]);
  return add(y, b);
}
