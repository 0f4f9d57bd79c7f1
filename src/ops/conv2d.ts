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
import { gpu, grid1d, type GpuRuntime } from '../gpu/encoder.js';
import { Tensor } from '../tensor/tensor.js';
import { formatShape, sameShape, type Shape } from '../tensor/shape.js';
import { add, binaryKernel } from './elementwise.js';
import { reduceAxisKernel, sumTo } from './reduce.js';
import { reshape } from './view.js';
import { median } from '../stats.js';

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
  // A workgroup of whole subgroups, so that a row of tiles never straddles two workgroups.
  return kernelPath === 'auto' && rt.subgroupSize > 0 && WG % rt.subgroupSize === 0 && rt.hasFamily('conv2d_subgroup');
}

const WG = 64;
// Must match the shaders: X_MAX inputs per row in forward, KW_MAX taps per row in backward_weight,
// the subgroup kernels' TM (16 rows × 4 columns measured as fast as 8 × 8, with fewer wasted columns).
const X_MAX = 32;
const KW_MAX = 8;
const SUBGROUP_TM = 16;
const FORWARD_3X3_STORAGE_BUFFERS = 9;

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
 * Whether forward_3x3 runs this geometry: it binds 9 storage buffers (input, weights, bias map and its
 * classes, BN's four, output), WebGPU guarantees 8, and a device granted no more runs the general kernels.
 */
function runsForward3x3(g: Conv2dGeometry, strides: readonly number[] = [1]): boolean {
  return fits3x3(g, strides) && gpu().limits.maxStorageBuffersPerShaderStage >= FORWARD_3X3_STORAGE_BUFFERS;
}

/**
 * Channel rows per workgroup when `channels` are split evenly into blocks of at most `most` (SUBGROUP_TM
 * for the vec4 backward kernels: 11 or 23 channels run 11 or 2 × 12 rows); the forward's two-row splits
 * use it with their own limits, and the forward picks its block per shape (forward3x3Blocks).
 */
function rowBlock(channels: number, most: number = SUBGROUP_TM): number {
  return Math.ceil(channels / Math.ceil(channels / most));
}

/** Weights in the packed layout of the 3×3 kernels; `flip` gives those of the stride-1 input gradient. */
function pack3x3(w: Tensor, g: Conv2dGeometry, flip: boolean): Tensor {
  const rt = gpu();
  const pairs = g.outChannels * g.inChannels;
  const packed = Tensor.empty([pairs * 12]);
  const overrides = { WG, FLIP: flip ? 1 : 0 };
  if (pairs % 4 === 0) {
    const kernel = rt.kernel({ family: 'conv2d', entry: 'pack_3x3_quads', bindings: ['dims', 'w_quads', 'wt4'], overrides });
    rt.dispatch(kernel, { w_quads: w.buffer, wt4: packed.buffer }, uniforms(g), grid1d(pairs / 4, WG));
  } else {
    const kernel = rt.kernel({ family: 'conv2d', entry: 'pack_3x3', bindings: ['dims', 'w', 'wt'], overrides });
    rt.dispatch(kernel, { w: w.buffer, wt: packed.buffer }, uniforms(g), grid1d(packed.size, WG));
  }
  return packed;
}

/**
 * Output channels per workgroup that forward_3x3 runs. On lavapipe a block's cost grows with its rows,
 * so the block that fits a layer's width matters: 12 kept of 16 channels run as one 12-row block, 22 of
 * 32 as three 8-row ones (measured per shape, batch 128: 1.3× and 1.3× faster than 16-row blocks).
 * The fixed candidates, plus the even split of the channels into blocks of at most 16 (10 of 16 → one
 * 10-row block, 39 of 64 → three of 13).
 */
const ROW_BLOCKS = [8, 12, 16] as const;
/** The most rows a block can have (TM_MAX in the shader). */
const MAX_ROW_BLOCK = SUBGROUP_TM;

export function forward3x3RowBlocks(channels: number): number[] {
  return [...new Set([...ROW_BLOCKS, rowBlock(channels)])].sort((a, b) => a - b);
}

/**
 * How forward_3x3 splits the work: `tm` output channels per workgroup, `rows` output rows per lane (2:
 * two rows share their middle input rows and every weight shuffle; stride 1 and an even height only).
 */
export interface Forward3x3Block {
  tm: number;
  rows: 1 | 2;
}

/** "12" for one output row per lane, "2×8" for two. */
export function formatForward3x3Block(b: Forward3x3Block): string {
  return b.rows === 1 ? `${b.tm}` : `2×${b.tm}`;
}

/**
 * Blocks of two rows per lane keep 2·tm sums per lane, so their candidates are narrower: 4, 6 or 8
 * channels, or the width split evenly into blocks of at most 8 or at most 12 (10 channels at 32×32 ran
 * 1.25× faster as one 2×10 block than as two 2×5 ones; 2×16, 32 sums a lane, ran 3× slower than 16).
 */
const TWO_ROW_BLOCKS = [4, 6, 8] as const;
const TWO_ROW_SPLITS = [8, 12] as const;

/** The blocks tuneConv2d measures for a shape: one row per lane with forward3x3RowBlocks, and where the shape allows, two with TWO_ROW_BLOCKS and the TWO_ROW_SPLITS. */
export function forward3x3Blocks(g: Conv2dGeometry): Forward3x3Block[] {
  const one = forward3x3RowBlocks(g.outChannels).map((tm) => ({ tm, rows: 1 as const }));
  if (!twoRowsFit(g)) return one;
  const splits = TWO_ROW_SPLITS.map((most) => rowBlock(g.outChannels, most));
  const two = [...new Set([...TWO_ROW_BLOCKS, ...splits])].sort((a, b) => a - b).map((tm) => ({ tm, rows: 2 as const }));
  return [...one, ...two];
}

function twoRowsFit(g: Conv2dGeometry): boolean {
  return g.stride === 1 && g.outH % 2 === 0;
}

/** What forward_3x3 does after the sums; the best block depends on it too (a map's loads cost per row). */
interface Epilogue {
  map: boolean;
  bn: boolean;
  relu: boolean;
}

const PLAIN: Epilogue = { map: false, bn: false, relu: false };

function forward3x3Key(g: Conv2dGeometry, e: Epilogue): string {
  const extras = [e.map && 'bias map', e.bn && 'BN', e.relu && 'ReLU'].filter(Boolean).join(' + ');
  return `${g.batch}×${g.inChannels}×${g.inH}×${g.inW}→${g.outChannels} s${g.stride}${extras ? ` + ${extras}` : ''}`;
}

/** Untuned choice: among the fixed one-row candidates, the block that pads the fewest rows, the largest on ties. */
function defaultForward3x3Block(channels: number): Forward3x3Block {
  let best: number = MAX_ROW_BLOCK;
  for (const tm of ROW_BLOCKS) {
    const padded = Math.ceil(channels / tm) * tm;
    const bestPadded = Math.ceil(channels / best) * best;
    if (padded < bestPadded || (padded === bestPadded && tm > best)) best = tm;
  }
  return { tm: best, rows: 1 };
}

/** Blocks measured by tuneConv2d, per device (a new device starts untuned). */
const tunedBlocks = new WeakMap<GpuRuntime, Map<string, Forward3x3Block>>();
/** While tuneConv2d runs the model once: the 3×3 forward shapes it dispatches. */
let recording: Map<string, { g: Conv2dGeometry; epilogue: Epilogue }> | null = null;

/** A block forced on every forward_3x3 (tests check each one); null: tuned, else the default. */
let forcedBlock: Forward3x3Block | null = null;

/**
 * Forces forward_3x3's block: `tm` an integer from 1 to 16, `rows` 1 or 2 (two apply where the shape
 * allows, one elsewhere); null undoes. Returns the previous setting.
 */
export function setForward3x3Block(block: Forward3x3Block | null): Forward3x3Block | null {
  if (block !== null) {
    const { tm, rows } = block;
    if (!(Number.isInteger(tm) && tm >= 1 && tm <= MAX_ROW_BLOCK)) {
      throw new Error(`conv2d: forward_3x3 row block must be an integer from 1 to ${MAX_ROW_BLOCK}, got ${tm}`);
    }
    if (rows !== 1 && rows !== 2) throw new Error(`conv2d: forward_3x3 runs 1 or 2 output rows per lane, got ${rows}`);
  }
  const previous = forcedBlock;
  forcedBlock = block;
  return previous;
}

function forward3x3Block(g: Conv2dGeometry, epilogue: Epilogue): Forward3x3Block {
  const block = forcedBlock ?? tunedBlocks.get(gpu())?.get(forward3x3Key(g, epilogue)) ?? defaultForward3x3Block(g.outChannels);
  return block.rows === 2 && !twoRowsFit(g) ? { tm: block.tm, rows: 1 } : block;
}

/** Batch norm in evaluation mode (running statistics), as conv2dBatchNormEval fuses it. */
export interface BatchNormEval {
  runningMean: Tensor;
  runningVar: Tensor;
  gamma: Tensor;
  beta: Tensor;
  eps: number;
  relu: boolean;
}

/**
 * From this batch on, forward_3x3 reads a bias map through its border-class table
 * (biasMapClassTable): building the table reads the map once, the epilogue would read it once per sample.
 */
const MAP_CLASSES_MIN_BATCH = 4;

/**
 * A bias map [C, H, W] of a 3×3, padding-1 conv by border class of row and column (first, between, last):
 * [C, 3 rows] of vec4 (left, middle, right, ok), ok = 1 where every position of the channel equals its
 * class's value bit for bit (the map of constant input channels always does; forward_3x3 loads the map
 * of a channel without).
 */
export function biasMapClassTable(map: Tensor): Tensor {
  if (map.rank !== 3) throw new Error(`conv2d: bias map must be [channels, height, width], got ${map.describe()}`);
  const [channels, h, w] = map.shape;
  if (w % 4 !== 0) throw new Error(`conv2d: bias map class table needs a width that is a multiple of 4, got ${map.describe()}`);
  const rt = gpu();
  const table = Tensor.empty([channels, 3, 4]);
  const kernel = rt.kernel({ family: 'conv2d_subgroup', entry: 'bias_map_classes', bindings: ['dims', 'bias_map4', 'map_classes_out'], overrides: { WG } });
  const g: Conv2dGeometry = { batch: 1, inChannels: channels, outChannels: channels, inH: h, inW: w, outH: h, outW: w, kernelH: 3, kernelW: 3, stride: 1, padding: 1 };
  rt.dispatch(kernel, { bias_map4: map.buffer, map_classes_out: table.buffer }, uniforms(g), grid1d(channels, WG));
  return table;
}

function forward3x3(
  x: Tensor,
  packed: Tensor,
  g: Conv2dGeometry,
  biasMap: Tensor | null = null,
  bn: BatchNormEval | null = null,
  block?: Forward3x3Block,
): Tensor {
  const rt = gpu();
  const mapClasses = biasMap && g.batch >= MAP_CLASSES_MIN_BATCH ? biasMapClassTable(biasMap) : null;
  const epilogue: Epilogue = { map: biasMap !== null, bn: bn !== null, relu: bn?.relu ?? false };
  const { tm, rows } = block ?? forward3x3Block(g, epilogue);
  recording?.set(forward3x3Key(g, epilogue), { g, epilogue });
  const y = Tensor.empty([g.batch, g.outChannels, g.outH, g.outW]);
  const tiles = g.batch * (g.outH / rows) * (g.outW / 4);
  // The epilogue's unused bindings get the packed weights (never read).
  const kernel = rt.kernel({
    family: 'conv2d_subgroup',
    entry: 'forward_3x3',
    bindings: ['dims', 'x4', 'w4', 'bias_map4', 'map_classes', 'bn_mean', 'bn_var', 'bn_gamma', 'bn_beta', 'y4'],
    overrides: {
      WG, SG: rt.subgroupSize, TM: tm, ROWS: rows, STRIDE: g.stride,
      HAS_MAP: Number(biasMap !== null), MAP_CLASSES: Number(mapClasses !== null),
      HAS_BN: Number(bn !== null), RELU: Number(bn?.relu ?? false), EPS: bn?.eps ?? 1e-5,
    },
  });
  const unused = packed.buffer;
  const buffers = {
    x4: x.buffer, w4: packed.buffer, y4: y.buffer, bias_map4: biasMap?.buffer ?? unused, map_classes: mapClasses?.buffer ?? unused,
    bn_mean: bn?.runningMean.buffer ?? unused, bn_var: bn?.runningVar.buffer ?? unused,
    bn_gamma: bn?.gamma.buffer ?? unused, bn_beta: bn?.beta.buffer ?? unused,
  };
  rt.dispatch(kernel, buffers, uniforms(g), [Math.ceil(tiles / WG), Math.ceil(g.outChannels / tm)]);
  mapClasses?.dispose();
  return y;
}

/** The geometry the stride-1 input gradient of `g` runs through forward3x3 (conv2dBackwardInputKernel). */
function inputGradientGeometry(g: Conv2dGeometry): Conv2dGeometry {
  return {
    ...g, inChannels: g.outChannels, outChannels: g.inChannels,
    inH: g.outH, inW: g.outW, outH: g.inH, outW: g.inW, padding: g.kernelH - 1 - g.padding,
  };
}

export interface Conv2dTuning {
  /** The shape: batch × in channels × height × width → out channels, stride. */
  shape: string;
  /** Milliseconds per candidate block, named by formatForward3x3Block (the median of the samples). */
  ms: Record<string, number>;
  chosen: string;
}

/** A tuning sample lasts at least this long, up to MAX_TUNING_REPEATS dispatches of one block. */
const TUNING_SAMPLE_MS = 2;
const MAX_TUNING_REPEATS = 32;

/**
 * Measures which block forward_3x3 runs fastest (median time) for every 3×3 shape and epilogue that `run`
 * dispatches, and uses it from then on, on this device. `run` is called once (make it an evaluation-mode
 * forward without gradients). With `training`, the shapes are tuned as a training step runs them: plain
 * epilogue, plus the stride-1 input gradients. The choice never changes a result: every block sums each
 * output in the same order.
 */
export async function tuneConv2d(run: () => void, options: { training?: boolean; samples?: number } = {}): Promise<Conv2dTuning[]> {
  const rt = gpu();
  const shapes = new Map<string, { g: Conv2dGeometry; epilogue: Epilogue }>();
  recording = shapes;
  try {
    run();
  } finally {
    recording = null;
  }
  if (options.training) {
    // A training step runs the plain epilogue (BN apart), forward and stride-1 input gradient.
    for (const [key, { g }] of [...shapes]) {
      shapes.delete(key);
      shapes.set(forward3x3Key(g, PLAIN), { g, epilogue: PLAIN });
      const t = inputGradientGeometry(g);
      if (g.stride === 1 && runsForward3x3(t)) shapes.set(forward3x3Key(t, PLAIN), { g: t, epilogue: PLAIN });
    }
  }
  let table = tunedBlocks.get(rt);
  if (!table) tunedBlocks.set(rt, (table = new Map()));
  const samples = options.samples ?? 7;
  const results: Conv2dTuning[] = [];
  for (const [key, { g, epilogue }] of shapes) {
    if (table.has(key)) continue;
    // Zeros of the right shapes (the variance 0 + eps is a valid BN input).
    const zeros = (shape: Shape) => {
      const t = Tensor.empty(shape);
      rt.clear(t.buffer);
      return t;
    };
    const x = zeros([g.batch, g.inChannels, g.inH, g.inW]);
    const packed = zeros([g.outChannels * g.inChannels * 12]);
    const map = epilogue.map ? zeros([g.outChannels, g.outH, g.outW]) : null;
    const perChannel = epilogue.bn ? zeros([g.outChannels]) : null;
    const bn = perChannel && { runningMean: perChannel, runningVar: perChannel, gamma: perChannel, beta: perChannel, eps: 1e-5, relu: epilogue.relu };
    const candidates = forward3x3Blocks(g);
    const times = new Map<Forward3x3Block, number[]>(candidates.map((b) => [b, []]));
    // One untimed pass builds the pipelines; then the candidates take turns.
    for (const b of candidates) forward3x3(x, packed, g, map, bn, b).dispose();
    await rt.sync();
    // Where one dispatch is shorter than a submit and wait (a real GPU), a sample repeats it enough to time the kernel.
    const passStart = performance.now();
    for (const b of candidates) forward3x3(x, packed, g, map, bn, b).dispose();
    await rt.sync();
    const perDispatch = (performance.now() - passStart) / candidates.length;
    const repeats = Math.min(MAX_TUNING_REPEATS, Math.max(1, Math.ceil(TUNING_SAMPLE_MS / Math.max(perDispatch, 1e-3))));
    for (let s = 0; s < samples; s++) {
      for (const b of candidates) {
        const start = performance.now();
        for (let r = 0; r < repeats; r++) forward3x3(x, packed, g, map, bn, b).dispose();
        await rt.sync();
        times.get(b)!.push((performance.now() - start) / repeats);
      }
    }
    for (const t of [x, packed, map, perChannel]) t?.dispose();
    // The median sample: on lavapipe a block's time varies from run to run by more than the blocks
    // differ, and the luckiest sample of a block that varies most would win too often.
    const best = new Map(candidates.map((b) => [b, median(times.get(b)!)]));
    const chosen = candidates.reduce((a, b) => (best.get(b)! < best.get(a)! ? b : a));
    table.set(key, chosen);
    const ms = Object.fromEntries(candidates.map((b) => [formatForward3x3Block(b), best.get(b)!]));
    results.push({ shape: key, ms, chosen: formatForward3x3Block(chosen) });
  }
  return results;
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

/**
 * bn(conv2d(x, w) + biasMap) in evaluation mode, BN's ReLU included, as one pass where the vec4 3×3
 * kernels apply (else null: the caller runs the two ops). The same values as the two passes; no gradient.
 */
export function conv2dBatchNormEval(x: Tensor, w: Tensor, options: Conv2dOptions, biasMap: Tensor | null, bn: BatchNormEval): Tensor | null {
  const g = conv2dGeometry(x.shape, w.shape, options);
  if (!runsForward3x3(g, [1, 2])) return null;
  if (biasMap && !sameShape(biasMap.shape, [g.outChannels, g.outH, g.outW])) {
    throw new Error(`conv2d: bias map must be [${g.outChannels}, ${g.outH}, ${g.outW}] for input ${x.describe()}, got ${biasMap.describe()}`);
  }
  for (const [name, t] of Object.entries({ running_mean: bn.runningMean, running_var: bn.runningVar, weight: bn.gamma, bias: bn.beta })) {
    if (t.rank !== 1 || t.shape[0] !== g.outChannels) {
      throw new Error(`conv2d + batch norm: ${name} must have shape [${g.outChannels}] for ${g.outChannels} output channels, got ${t.describe()}`);
    }
  }
  // The weights do not change between inference calls: their packing is made once and held by the runtime
  // until they are written (a dispatch less per conv; at batch 1 packing took a third of a forward).
  const packed = gpu().derived(w.buffer, `pack_3x3 ${g.outChannels}×${g.inChannels}`, () => pack3x3(w, g, false).keep());
  return forward3x3(x, packed, g, biasMap, bn);
}

/** y = conv2d(x, w), plus `biasMap` [out_channels, out_h, out_w] added to every sample when given. */
export function conv2dForwardKernel(x: Tensor, w: Tensor, g: Conv2dGeometry, biasMap: Tensor | null = null): Tensor {
  if (runsForward3x3(g, [1, 2])) {
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
    const transposed = inputGradientGeometry(g);
    if (runsForward3x3(transposed)) {
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
