/**
 * FLOP and parameter counts for CIFAR ResNets, pruned or not:
 *  - `paperConvFlops`: the SFP paper's count (utils/cifar_resnet_flop.py): 3×3 convs only, one
 *    multiply-add = 1 FLOP, with the float keep ratio r = 1 − P applied as the script does — the stem and
 *    every block's first conv scale by r (their input keeps full width), every block's last conv by r²,
 *    and the first block of stage 1 (whose input is the pruned stem) by r² on both convs.
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

/** The paper's conv-only FLOPs for a CIFAR ResNet of `depth` pruned at rate P (0 for the baseline). */
export function paperConvFlops(depth: number, rate: number, widths: readonly number[] = [16, 32, 64]): number {
  const n = (depth - 2) / 6;
  const r = 1 - rate;
  let size = 32;
  let total = convMacs(3, widths[0], 3, size, size) * r;
  widths.forEach((width, stage) => {
    if (stage > 0) size /= 2;
    for (let b = 0; b < n; b++) {
      const inWidth = b === 0 && stage > 0 ? widths[stage - 1] : width;
      const first = convMacs(inWidth, width, 3, size, size);
      const second = convMacs(width, width, 3, size, size);
      const firstScale = stage === 0 && b === 0 ? r * r : r;
      total += first * firstScale + second * r * r;
    }
  });
  return total;
}

/** Kept filters per conv, by name; convs that are absent keep all their filters. */
export type KeptCounts = ReadonlyMap<string, number>;

/**
 * The exact counts for the model compaction produces in faithful SFP mode: each conv computes only
 * its kept filters; a block's first conv reads the full-width residual stream; its last conv reads the
 * first conv's kept channels and its output is added into the full-width stream.
 */
export function compactFlops(model: CifarResNet, kept: KeptCounts = new Map()): FlopBreakdown {
  const k = (name: string, full: number) => kept.get(name) ?? full;
  const widths = model.widths;
  const b: FlopBreakdown = { conv: 0, fc: 0, batchNorm: 0, relu: 0, add: 0, pool: 0, total: 0 };
  let size = 32;
  let stream = widths[0];
  const stem = k('conv1', widths[0]);
  b.conv += convMacs(3, stem, 3, size, size);
  b.batchNorm += 2 * stem * size * size;
  b.relu += stream * size * size;
  model.stages.forEach((stage, s) => {
    const width = widths[s];
    stage.blocks.forEach((block, i) => {
      const stride = block.conv1.stride;
      const inWidth = stream;
      if (stride === 2) size /= 2;
      const prefix = `layer${s + 1}.${i}`;
      const k1 = k(`${prefix}.conv1`, width);
      const k2 = k(`${prefix}.conv2`, width);
      b.conv += convMacs(inWidth, k1, 3, size, size) + convMacs(k1, k2, 3, size, size);
      b.batchNorm += 2 * (k1 + k2) * size * size;
      b.relu += k1 * size * size + width * size * size;
      b.add += k2 * size * size;
      stream = width;
    });
  });
  b.pool += stream * size * size;
  b.fc += stream * model.numClasses;
  b.total = b.conv + b.fc + b.batchNorm + b.relu + b.add + b.pool;
  return b;
}

/** Parameters of the compacted model (convs, BN γ and β, classifier), for the same kept counts. */
export function compactParameters(model: CifarResNet, kept: KeptCounts = new Map()): number {
  const k = (name: string, full: number) => kept.get(name) ?? full;
  const widths = model.widths;
  let stream = widths[0];
  const stem = k('conv1', widths[0]);
  let total = 3 * stem * 9 + 2 * widths[0];
  model.stages.forEach((stage, s) => {
    const width = widths[s];
    stage.blocks.forEach((_, i) => {
      const prefix = `layer${s + 1}.${i}`;
      const k1 = k(`${prefix}.conv1`, width);
      const k2 = k(`${prefix}.conv2`, width);
      total += stream * k1 * 9 + 2 * k1 + k1 * k2 * 9 + 2 * width;
      stream = width;
    });
  });
  return total + stream * model.numClasses + model.numClasses;
}
