// The compaction plan derived from masks and the couplings the model declares: its printed cascade, the
// live/constant state of every stream channel, the constants' values, JSON round trip, and the counts
// flops.ts gives for the compact model.
import { beforeAll, describe, expect, it } from 'vitest';
import { CifarResNet } from '../../src/models/resnet.js';
import { CompactionPlan, planCompaction, type BatchNormHost } from '../../src/prune/plan.js';
import { compactParameters } from '../../src/prune/flops.js';
import { Rng } from '../../src/tensor/random.js';

let model: CifarResNet;
beforeAll(() => {
  model = new CifarResNet(20, 10, 3);
});

/** Default BN values (γ 1, β 0, μ 0, σ² 1): every BN(0) is 0. */
function defaultBatchNorms(m: CifarResNet): Map<string, BatchNormHost> {
  const out = new Map<string, BatchNormHost>();
  for (const [name, mod] of m.namedModules()) {
    if (!('runningVar' in mod)) continue;
    const n = (mod as unknown as { numFeatures: number }).numFeatures;
    out.set(name, { weight: new Float64Array(n).fill(1), bias: new Float64Array(n), runningMean: new Float64Array(n), runningVar: new Float64Array(n).fill(1), eps: 1e-5 });
  }
  return out;
}

function randomBatchNorms(m: CifarResNet, rng: Rng): Map<string, BatchNormHost> {
  const out = defaultBatchNorms(m);
  for (const bn of out.values()) {
    for (let j = 0; j < bn.weight.length; j++) {
      (bn.weight as Float64Array)[j] = 0.5 + rng.uniform();
      (bn.bias as Float64Array)[j] = 2 * rng.uniform() - 1;
      (bn.runningMean as Float64Array)[j] = 2 * rng.uniform() - 1;
      (bn.runningVar as Float64Array)[j] = 0.5 + rng.uniform();
    }
  }
  return out;
}

function maskPruning(width: number, pruned: number[]): Uint32Array {
  const m = new Uint32Array(width).fill(1);
  for (const j of pruned) m[j] = 0;
  return m;
}

describe('CompactionPlan', () => {
  it('prints the cascade of a known mask: stem and conv1 narrow their consumers, conv2 scatter-adds into the full stream', () => {
    const masks = new Map([
      ['conv1', maskPruning(16, [0, 1, 2, 3])],
      ['layer1.0.conv1', maskPruning(16, [0, 1, 2, 3])],
      ['layer1.0.conv2', maskPruning(16, [4, 5, 6, 7])],
    ]);
    const plan = planCompaction(model, masks, defaultBatchNorms(model));
    const lines = plan.toString().split('\n');
    expect(lines.slice(0, 4)).toEqual([
      'conv1 out 16→12 ⇒ bn1 16→12 ⇒ stream stage 1: 12 live of 16, 4 constant dropped',
      'layer1.0.conv1 in 16→12',
      'layer1.0.conv1 out 16→12 ⇒ layer1.0.bn1 16→12 ⇒ layer1.0.conv2 in 16→12',
      'layer1.0.conv2 out 16→12 ⇒ stream stage 1: 16 live (scatter-add 12, constants 4)',
    ]);
    expect(lines.at(-1)).toBe('fc in 64→64');
    // Channels 0–3: the stem's constants plus conv2's live outputs; 4–7: the live residual plus conv2's constants.
    const join = plan.blocks[0].join;
    expect(join.yIndex.slice(0, 8)).toEqual([0, 1, 2, 3, -1, -1, -1, -1]);
    expect(join.rIndex.slice(0, 8)).toEqual([-1, -1, -1, -1, 0, 1, 2, 3]);
    expect(plan.streamWidths().get('layer1.0')).toBe(12);
    expect(plan.streamWidths().get('layer1.1')).toBe(16);
  });

  it('constants are BN(0) after the ReLU inside a block, BN2(0) + a constant residual at the join, and relu of that when dropped', () => {
    const bns = randomBatchNorms(model, new Rng(7));
    const masks = new Map([
      ['conv1', maskPruning(16, [5])],
      ['layer1.0.conv1', maskPruning(16, [2])],
      ['layer1.0.conv2', maskPruning(16, [5, 9])],
    ]);
    const plan = planCompaction(model, masks, bns);
    const relu = (v: number) => Math.max(v, 0);
    // Eval-mode BN of an all-zero channel, written out here rather than taken from the plan's code: β − γ·μ/√(σ² + ε).
    const batchNormOfZero = (bn: BatchNormHost, c: number) => bn.bias[c] - (bn.weight[c] * bn.runningMean[c]) / Math.sqrt(bn.runningVar[c] + bn.eps);
    expect(plan.stem.constantOut).toEqual([{ channel: 5, value: relu(batchNormOfZero(bns.get('bn1')!, 5)) }]);
    expect(plan.blocks[0].conv2.constantIn).toEqual([{ channel: 2, value: relu(batchNormOfZero(bns.get('layer1.0.bn1')!, 2)) }]);
    const join = plan.blocks[0].join;
    // Channel 5: pruned by the stem and by conv2 → constant relu(BN2(0) + relu(BN1(0))), dropped.
    const c5 = relu(batchNormOfZero(bns.get('layer1.0.bn2')!, 5) + relu(batchNormOfZero(bns.get('bn1')!, 5)));
    expect(join.constantChannels).toEqual([{ channel: 5, value: c5 }]);
    // Channel 9: conv2 pruned, the residual live → live, with BN2(0) added.
    const at9 = join.live.indexOf(9);
    expect(join.yIndex[at9]).toBe(-1);
    expect(join.constants[at9]).toBe(batchNormOfZero(bns.get('layer1.0.bn2')!, 9));
    expect(plan.blocks[1].conv1.constantIn).toEqual([{ channel: 5, value: c5 }]);
  });

  it('a stream channel is dropped only when every writer makes it constant: zero-padded channels of stage 2 pruned by every conv2, not a channel live in stage 1', () => {
    const masks = new Map<string, Uint32Array>();
    for (let i = 0; i < 3; i++) masks.set(`layer2.${i}.conv2`, maskPruning(32, [3, 20]));
    const plan = planCompaction(model, masks, defaultBatchNorms(model));
    for (let i = 0; i < 3; i++) {
      const join = plan.blocks[3 + i].join;
      expect(join.constantChannels.map((c) => c.channel)).toEqual([20]);
      expect(join.live).toContain(3);
    }
    expect(plan.toString()).toContain('layer2.0.conv2 out 32→30 ⇒ stream stage 2: 31 live of 32, 1 constant dropped (scatter-add 30, constants 1)');
    expect(plan.streamWidths().get('layer3.0')).toBe(31);
  });

  it('rate 0 (no masks, or all-ones masks) gives the identity plan', () => {
    const all = new Map(model.convs().map(([name, c]) => [name, new Uint32Array(c.outChannels).fill(1)]));
    for (const masks of [new Map(), all]) {
      const plan = planCompaction(model, masks, defaultBatchNorms(model));
      expect(plan.isIdentity).toBe(true);
      expect(plan.head.live.length).toBe(64);
      expect(plan.blocks.every((b) => b.join.constants.every((c) => c === 0))).toBe(true);
    }
  });

  it('survives a JSON round trip and prints the same', () => {
    const masks = new Map([['layer3.2.conv2', maskPruning(64, [0, 63])], ['conv1', maskPruning(16, [8])]]);
    const plan = planCompaction(model, masks, randomBatchNorms(model, new Rng(1)));
    const back = CompactionPlan.fromJSON(JSON.parse(JSON.stringify(plan)));
    expect(back.toString()).toBe(plan.toString());
    expect(back.toJSON()).toEqual(plan.toJSON());
  });

  it('rejects a mask for a conv the model lacks, a wrong length, and a conv with every filter pruned', () => {
    const bns = defaultBatchNorms(model);
    expect(() => planCompaction(model, new Map([['layer4.0.conv1', new Uint32Array(16)]]), bns)).toThrow(/layer4\.0\.conv1/);
    expect(() => planCompaction(model, new Map([['conv1', new Uint32Array(15).fill(1)]]), bns)).toThrow(/15 entries/);
    expect(() => planCompaction(model, new Map([['conv1', new Uint32Array(16)]]), bns)).toThrow(/every filter of conv1/);
  });

  it('compactParameters with the plan’s kept counts and stream widths; without widths, the first block reads the stem’s kept channels', () => {
    const masks = new Map([['conv1', maskPruning(16, [0, 1, 2, 3])]]);
    const plan = planCompaction(model, masks, defaultBatchNorms(model));
    const full = compactParameters(model);
    // The stem loses 4 filters (4·27 weights, 4·2 BN) and layer1.0.conv1 4 input channels (16·4·9).
    expect(compactParameters(model, plan.keptCounts())).toBe(full - 4 * 27 - 8 - 16 * 4 * 9);
    expect(compactParameters(model, plan.keptCounts(), plan.streamWidths())).toBe(full - 4 * 27 - 8 - 16 * 4 * 9);
  });
});
