/**
 * FLOP and parameter counts for CIFAR ResNets, pruned or not:
 *  - `paperConvFlops`: the SFP paper's count (utils/cifar_resnet_flop.py): 3×3 convs only, one
 *    multiply-add = 1 FLOP, with the float keep ratio r = 1 − P applied as the script does — the stem and
 *    every block's first conv scale by r (their input keeps full width), every block's last conv by r²,
 *    and the first block of stage 1 (whose input is the pruned stem) by r² on both convs. With a rate per
 *    conv role and stage (`--skip-stem`, `--skip-last`, `--stage-rates`), each conv takes the keep ratios
 *    of its own output and its input.
 *  - `compactFlops`: the exact count of the dense model compaction builds from real integer masks:
 *    convs and the classifier as multiply-adds, plus BN (2 per element: scale and shift), ReLU and the
 *    residual additions (1 per element each), and the global average pool (1 per input element).
 */
import type { CifarResNet } from '../models/resnet.js';

/** Multiply-adds of one conv: out·in·k²·H_out·W_out. */
export function convMacs(inChannels: number, outChannels: number, kernel: number, outH: number, outW: number): number {
  return inChannels * outChannels * kernel * kernel * outH * outW;
}

export interface FlopBreakdown {
  conv: number;
  fc: number;
  batchNorm: number;
  relu: number;
  add: number;
  pool: number;
  total: number;
}

/**
 * The pruning rate of each conv role, per stage (0: unpruned): all the paper's formula needs. The stem
 * counts with the first stage.
 */
export interface ConvRates {
  stem: number;
  /** Each block's first conv, per stage. */
  first: readonly number[];
  /** Each block's last conv (the one writing the residual stream), per stage. */
  last: readonly number[];
}

/** One rate for every conv of every stage, as the paper prunes. */
function uniformRates(rate: number, stages = 3): ConvRates {
  const all = new Array<number>(stages).fill(rate);
  return { stem: rate, first: all, last: all };
}

/**
 * The paper's conv-only FLOPs for a CIFAR ResNet of `depth` pruned at rate P (0 for the baseline), or at
 * a rate per conv role and stage: a conv scales by the keep ratio of its output and of its input, where
 * a block's first conv reads the stream at full width except in the first block, which reads the stem.
 */
export function paperConvFlops(depth: number, rates: number | ConvRates, widths: readonly number[] = [16, 32, 64]): number {
  const n = (depth - 2) / 6;
  const r = typeof rates === 'number' ? uniformRates(rates, widths.length) : rates;
  const keepStem = 1 - r.stem;
  let size = 32;
  let total = convMacs(3, widths[0], 3, size, size) * keepStem;
  widths.forEach((width, stage) => {
    if (stage > 0) size /= 2;
    const keepFirst = 1 - r.first[stage];
    const keepLast = 1 - r.last[stage];
    for (let b = 0; b < n; b++) {
      const inWidth = b === 0 && stage > 0 ? widths[stage - 1] : width;
      const first = convMacs(inWidth, width, 3, size, size);
      const second = convMacs(width, width, 3, size, size);
      const firstInput = stage === 0 && b === 0 ? keepStem : 1;
      total += first * keepFirst * firstInput + second * keepFirst * keepLast;
    }
  });
  return total;
}

/** Kept filters per conv, by name; convs that are absent keep all their filters. */
export type KeptCounts = ReadonlyMap<string, number>;

/**
 * Live channels of the residual stream entering each block (by block name, `layer1.0`) and of the pooled
 * features (`fc`), as CompactionPlan.streamWidths() gives them. Where absent: the first block reads the
 * stem's kept channels (a pruned stem filter's channel is a constant, exactly), every other stream is taken
 * at full width (faithful SFP, where a stream channel is dropped only if every writer pruned it).
 */
export type StreamWidths = ReadonlyMap<string, number>;

/** The width of every conv and BN of the compact model, in forward order. */
function compactWidths(model: CifarResNet, kept: KeptCounts, streams: StreamWidths) {
  const k = (name: string, full: number) => kept.get(name) ?? full;
  const widths = model.widths;
  const stem = k('conv1', widths[0]);
  const blocks = model.stages.flatMap((stage, s) =>
    stage.blocks.map((block, i) => {
      const name = `layer${s + 1}.${i}`;
      const full = s === 0 && i === 0 ? stem : i === 0 ? widths[s - 1] : widths[s];
      return {
        name,
        width: widths[s],
        stride: block.conv1.stride,
        inWidth: streams.get(name) ?? full,
        k1: k(`${name}.conv1`, widths[s]),
        k2: k(`${name}.conv2`, widths[s]),
      };
    }),
  );
  const outWidths = blocks.map((b, i) => (i + 1 < blocks.length ? blocks[i + 1].inWidth : (streams.get('fc') ?? widths[widths.length - 1])));
  return { stem, blocks, outWidths, fcIn: streams.get('fc') ?? widths[widths.length - 1] };
}

/**
 * The exact counts for the model compaction produces: each conv computes only its kept filters and reads
 * the live channels before it; a block's last conv reads the first conv's kept channels and its output is
 * added into the live stream. (The bias maps of constant input channels are not counted.)
 */
export function compactFlops(model: CifarResNet, kept: KeptCounts = new Map(), streams: StreamWidths = new Map()): FlopBreakdown {
  const w = compactWidths(model, kept, streams);
  const b: FlopBreakdown = { conv: 0, fc: 0, batchNorm: 0, relu: 0, add: 0, pool: 0, total: 0 };
  let size = 32;
  b.conv += convMacs(3, w.stem, 3, size, size);
  b.batchNorm += 2 * w.stem * size * size;
  b.relu += w.stem * size * size;
  w.blocks.forEach((block, i) => {
    if (block.stride === 2) size /= 2;
    b.conv += convMacs(block.inWidth, block.k1, 3, size, size) + convMacs(block.k1, block.k2, 3, size, size);
    b.batchNorm += 2 * (block.k1 + block.k2) * size * size;
    b.relu += block.k1 * size * size + w.outWidths[i] * size * size;
    b.add += block.k2 * size * size;
  });
  b.pool += w.fcIn * size * size;
  b.fc += w.fcIn * model.numClasses;
  b.total = b.conv + b.fc + b.batchNorm + b.relu + b.add + b.pool;
  return b;
}

/** Parameters of the compacted model (convs, BN γ and β, classifier), for the same kept counts and stream widths. */
export function compactParameters(model: CifarResNet, kept: KeptCounts = new Map(), streams: StreamWidths = new Map()): number {
  const w = compactWidths(model, kept, streams);
  let total = 3 * w.stem * 9 + 2 * w.stem;
  for (const b of w.blocks) total += b.inWidth * b.k1 * 9 + 2 * b.k1 + b.k1 * b.k2 * 9 + 2 * b.k2;
  return total + w.fcIn * model.numClasses + model.numClasses;
}

/**
 * One layer's counts, for the per-layer speedup benchmark (src/bench/speedup.ts), in the same convention as
 * compactFlops: a multiply-add (conv, classifier) is 1 FLOP, BN 2 per element, ReLU, residual add, bias-map add
 * and pooling 1 per element. `macs` are the multiply-adds alone (hardware GFLOP/s counts them twice).
 */
export interface LayerFlops {
  macs: number;
  batchNorm: number;
  relu: number;
  add: number;
  pool: number;
  total: number;
}

function layerFlops(parts: Partial<Omit<LayerFlops, 'total'>>): LayerFlops {
  const f = { macs: 0, batchNorm: 0, relu: 0, add: 0, pool: 0, ...parts };
  return { ...f, total: f.macs + f.batchNorm + f.relu + f.add + f.pool };
}

/** A conv with its BN (and fused ReLU), per image; `biasMap`: a compact conv adds the map of its constant inputs. */
export function convLayerFlops(c: {
  inChannels: number;
  outChannels: number;
  kernel: number;
  outH: number;
  outW: number;
  relu: boolean;
  biasMap?: boolean;
}): LayerFlops {
  const elements = c.outChannels * c.outH * c.outW;
  return layerFlops({
    macs: convMacs(c.inChannels, c.outChannels, c.kernel, c.outH, c.outW),
    batchNorm: 2 * elements,
    relu: c.relu ? elements : 0,
    add: c.biasMap ? elements : 0,
  });
}

/** A residual join per image: `added` channels of the block's last conv added into the stream, then the ReLU of `outChannels`. */
export function joinLayerFlops(j: { added: number; outChannels: number; outH: number; outW: number }): LayerFlops {
  return layerFlops({ add: j.added * j.outH * j.outW, relu: j.outChannels * j.outH * j.outW });
}

/** A pooling layer per image: one operation per window element of every output. */
export function poolLayerFlops(p: { channels: number; kernel: number; outH: number; outW: number }): LayerFlops {
  return layerFlops({ pool: p.channels * p.kernel * p.kernel * p.outH * p.outW });
}

/** Global average pool and the classifier per image (as compactFlops: the bias add is not counted). */
export function headLayerFlops(h: { channels: number; inH: number; inW: number; numClasses: number }): LayerFlops {
  return layerFlops({ pool: h.channels * h.inH * h.inW, macs: h.channels * h.numClasses });
}
