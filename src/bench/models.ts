/**
 * Dense/compact pairs for the speedup benchmark: a masked CIFAR ResNet compacted by prune/compact.ts (from a
 * checkpoint, or random weights with a random SFP mask), and the ImageNet ResNets with a timing-only compact
 * model (see networks.ts). Each pair knows where it came from and releases its GPU memory.
 */
import type { Module } from '../nn/module.js';
import { CifarResNet, ImageNetResNet, type ImageNetResNetName } from '../models/resnet.js';
import { buildCompactionPlan, type CompactionPlan } from '../prune/plan.js';
import { compactModel, zeroMaskedFilters, type CompactResNet } from '../prune/compact.js';
import { cifarNetwork, compactCifarNetwork, imageNetNetwork, randomFilterMasks, randomizeBatchNorms, TimingCompactImageNet, type BenchNetwork } from './networks.js';
import { measureSpeedup, type MeasureOptions, type ModelResult } from './speedup.js';

export interface BenchPair {
  name: string;
  source: string;
  timingOnly: boolean;
  notes: string[];
  dense: BenchNetwork;
  compact: BenchNetwork;
  dispose(): void;
}

function release(...modules: Module[]): void {
  for (const m of modules) m.dispose();
}

/** A masked CIFAR model and its compact version (the compact one must be equivalent; the caller checked or trusts it). */
export function cifarPair(name: string, source: string, masked: CifarResNet, compact: CompactResNet, notes: string[] = []): BenchPair {
  masked.eval();
  compact.eval();
  return {
    name,
    source,
    timingOnly: false,
    notes: [
      'dense = the masked model at full width (its zeroed filters still run), compact = prune/compact.ts output',
      ...notes,
    ],
    dense: cifarNetwork(masked, compact.inputSize),
    compact: compactCifarNetwork(compact),
    dispose: () => release(masked, compact),
  };
}

/** Compacts `masked` with `masks` (zeroing the masked filters first) and returns the pair and the plan. */
export async function compactPair(name: string, source: string, masked: CifarResNet, masks: ReadonlyMap<string, Uint32Array>, notes: string[] = []): Promise<{ pair: BenchPair; plan: CompactionPlan }> {
  masked.eval();
  await zeroMaskedFilters(masked, masks);
  const plan = await buildCompactionPlan(masked, masks);
  const compact = await compactModel(masked, plan);
  return { pair: cifarPair(name, source, masked, compact, notes), plan };
}

/** A CIFAR ResNet with random weights and BN statistics and a random SFP mask at `rate` on every conv. */
export async function randomCifarPair(depth: number, rate: number, seed: number, widths?: readonly number[]): Promise<BenchPair> {
  const model = new CifarResNet(depth, 10, seed, widths);
  randomizeBatchNorms(model, seed + 1);
  const masks = randomFilterMasks(model, rate, seed + 2);
  const { pair } = await compactPair(
    `resnet${depth}${widths ? `-w${widths.join('-')}` : ''}`,
    `random weights and BN statistics, random ${Math.round(rate * 100)} % SFP mask on every conv (seed ${seed})`,
    model,
    masks,
  );
  return pair;
}

/** An ImageNet ResNet at size×size with random weights, and the timing-only compact model of a random SFP mask (projections unpruned). */
export function imageNetPair(arch: ImageNetResNetName, rate: number, seed: number, size = 224): BenchPair {
  const model = new ImageNetResNet(arch, 1000, seed);
  model.eval();
  const masks = randomFilterMasks(model, rate, seed + 2);
  const compact = new TimingCompactImageNet(arch, masks, size, seed + 3);
  return {
    name: `imagenet-${arch}`,
    source: `random weights at ${size}×${size}, random ${Math.round(rate * 100)} % SFP mask on every conv except the projection shortcuts (the SFP code's ImageNet setting), seed ${seed}`,
    timingOnly: true,
    notes: [
      'timing only: CIFAR compaction (prune/plan.ts) does not handle projection shortcuts, so the compact model is built directly from the kept channel counts with random weights; ' +
        'its kernels and widths are those a compaction would run (bias maps where inputs are constant, scatter-add joins into the live stream), its outputs are not equivalent to the dense model\'s',
    ],
    dense: imageNetNetwork(model, size),
    compact: compact.network,
    dispose: () => release(model, compact),
  };
}

/** Times one pair and packs the result. */
export async function benchPair(pair: BenchPair, options: MeasureOptions): Promise<ModelResult> {
  const batches = await measureSpeedup(pair.dense, pair.compact, options);
  return {
    name: pair.name,
    source: pair.source,
    timingOnly: pair.timingOnly,
    notes: pair.notes,
    inputShape: [...pair.dense.inputShape],
    parameters: { dense: pair.dense.parameters, compact: pair.compact.parameters },
    batches,
  };
}
