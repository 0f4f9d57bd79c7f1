// Soft Filter Pruning and hard pruning: the properties the paper and the official code define.
import { describe, expect, it } from 'vitest';
import { CifarResNet, describeConvs } from '../../src/models/resnet.js';
import { FilterPruner, FilterMasks, type PruneOptions } from '../../src/prune/sfp.js';
import { maskFromScores, prunedCount, asymptoticRate, convRatesOf } from '../../src/prune/criteria.js';
import { paperConvFlops } from '../../src/prune/flops.js';
import { filterScores } from '../../src/ops/mask.js';
import { SGD } from '../../src/optim/sgd.js';
import { Tensor, scope } from '../../src/tensor/tensor.js';
import { Rng } from '../../src/tensor/random.js';
import { softmaxCrossEntropy } from '../../src/ops/loss.js';
import { encodeCheckpoint, decodeCheckpoint, checkpointToHost } from '../../src/io/checkpoint.js';
import { assertClose } from '../support/allclose.js';
import { filterNorms, distanceSums } from '../reference/mask.js';

const model = (seed = 1) => new CifarResNet(20, 10, seed);

/** One SGD step on random 8×8 images (small, so the test is fast). */
function trainStep(m: CifarResNet, optimizer: SGD, rng: Rng, after?: () => void): void {
  scope(() => {
    const x = Tensor.fromArray(Float32Array.from({ length: 4 * 3 * 8 * 8 }, () => rng.normal()), [4, 3, 8, 8]);
    const y = Tensor.fromArray(Uint32Array.from({ length: 4 }, () => rng.int(10)), [4], 'u32');
    softmaxCrossEntropy(m.forward(x), y).backward();
    optimizer.step();
    optimizer.zeroGrad();
    after?.();
  });
}

async function filterIsZero(weight: Tensor, filter: number): Promise<boolean> {
  const data = await weight.toArray();
  const size = weight.size / weight.shape[0];
  return data.subarray(filter * size, (filter + 1) * size).every((v) => v === 0);
}

describe('selection', () => {
  it('prunes floor(C_out·P) filters: 4/9/19 of 16/32/64 at 30 %, 6/12/25 at 40 % (the SFP code)', () => {
    expect([16, 32, 64].map((c) => prunedCount(c, 0.3))).toEqual([4, 9, 19]);
    expect([16, 32, 64].map((c) => prunedCount(c, 0.4))).toEqual([6, 12, 25]);
    expect([16, 32, 64].map((c) => prunedCount(c, 0.1))).toEqual([1, 3, 6]);
    expect(() => prunedCount(16, 1)).toThrow(/\[0, 1\)/);
  });

  it('breaks ties by the lower index', () => {
    expect([...maskFromScores([1, 0.5, 0.5, 0.5, 2], 2)]).toEqual([1, 0, 0, 1, 1]);
  });

  it('grows the ASFP rate from 0 to P', () => {
    expect(asymptoticRate(0.3, 0, 10)).toBe(0);
    expect(asymptoticRate(0.3, 10, 10)).toBeCloseTo(0.3, 12);
    expect(asymptoticRate(0.3, 5, 10)).toBeGreaterThan(0.15);
    // The documented curve, 1 − e^(−4t) normalised: 64 % of P a quarter of the way, 97 % at three quarters.
    expect(asymptoticRate(0.3, 2.5, 10) / 0.3).toBeCloseTo(0.644, 3);
    expect(asymptoticRate(0.3, 7.5, 10) / 0.3).toBeCloseTo(0.968, 3);
  });
});

describe('criteria on the GPU', () => {
  it('L1, L2 and FPGM scores match the float64 reference on random weights', async () => {
    const rng = new Rng(5);
    const shape = [23, 12, 3, 3];
    const data = Float32Array.from({ length: 23 * 12 * 9 }, () => rng.normal());
    const w = Tensor.fromArray(data, shape);
    for (const [criterion, expected] of [
      ['l1', filterNorms(data, 23, 1)],
      ['l2', filterNorms(data, 23, 2)],
      ['fpgm', distanceSums(data, 23)],
    ] as const) {
      const scores = filterScores(w, criterion);
      assertClose(await scores.toArray(), expected, { rtol: 1e-5, atol: 1e-5, label: criterion });
      scores.dispose();
    }
    w.dispose();
  });
});

describe('soft filter pruning', () => {
  it('zeroes exactly floor(C_out·P) filters per layer, and every pruned norm ≤ every kept norm', async () => {
    const m = model();
    const pruner = new FilterPruner(m, { rate: 0.3 });
    expect(pruner.targets).toHaveLength(19); // the stem and both convs of all 9 blocks, as the official CIFAR script
    const before = new Map<string, Float64Array>();
    for (const t of pruner.targets) before.set(t.name, filterNorms(await t.conv.weight.toArray(), t.conv.outChannels, 2));
    const masks = await pruner.computeMasks();
    pruner.apply(masks);
    for (const t of pruner.targets) {
      const mask = masks.get(t.name)!;
      const norms = before.get(t.name)!;
      const pruned = [...mask.keys()].filter((i) => mask[i] === 0);
      const kept = [...mask.keys()].filter((i) => mask[i] === 1);
      expect(pruned).toHaveLength(prunedCount(t.conv.outChannels, 0.3));
      expect(Math.max(...pruned.map((i) => norms[i]))).toBeLessThanOrEqual(Math.min(...kept.map((i) => norms[i])));
      const after = filterNorms(await t.conv.weight.toArray(), t.conv.outChannels, 2);
      for (const i of pruned) expect(after[i]).toBe(0);
      for (const i of kept) expect(after[i]).toBeCloseTo(norms[i], 5);
    }
    expect(masks.toString()).toMatch(/layer3\.2\.conv2\s+kept 45\/64/);
    pruner.dispose();
  });

  it('a zeroed filter of a block\'s last conv becomes non-zero after one SGD step (gradients are not masked)', async () => {
    const m = model(2);
    const pruner = new FilterPruner(m, { rate: 0.3 });
    pruner.apply(await pruner.computeMasks());
    const target = pruner.targets.find((t) => t.name === 'layer1.0.conv2')!;
    const filter = pruner.masks!.get(target.name)!.indexOf(0);
    expect(await filterIsZero(target.conv.weight, filter)).toBe(true);
    const optimizer = new SGD(m.parameters(), { lr: 0.1, momentum: 0.9, weightDecay: 5e-4, nesterov: true });
    trainStep(m, optimizer, new Rng(3));
    expect(await filterIsZero(target.conv.weight, filter)).toBe(false);
    pruner.dispose();
  });

  it('momentum carried over from earlier steps revives a zeroed filter even behind BN + ReLU', async () => {
    // A zeroed conv1 filter gives a constant channel; BN maps it to β (0 at init) and ReLU passes no
    // gradient back (the official code's issue #36), so only momentum (not masked by SFP) moves it.
    const m = model(2);
    const optimizer = new SGD(m.parameters(), { lr: 0.1, momentum: 0.9, weightDecay: 5e-4, nesterov: true });
    const rng = new Rng(4);
    trainStep(m, optimizer, rng);
    const pruner = new FilterPruner(m, { rate: 0.3 });
    pruner.apply(await pruner.computeMasks());
    const target = pruner.targets.find((t) => t.name === 'layer1.0.conv1')!;
    const filter = pruner.masks!.get(target.name)!.indexOf(0);
    expect(await filterIsZero(target.conv.weight, filter)).toBe(true);
    trainStep(m, optimizer, rng);
    expect(await filterIsZero(target.conv.weight, filter)).toBe(false);
    pruner.dispose();
  });

  it('from scratch, a filter zeroed before the first step behind BN + ReLU never comes back (β = 0 at init)', async () => {
    // With no momentum yet, the zeroed filter's channel is BN's β = 0, ReLU passes no gradient at 0
    // (as PyTorch's), β and γ get none either: the filter stays zero and is re-pruned at every
    // masking, so soft pruning from scratch acts as hard pruning with the initial masks in such convs,
    // while a block's last conv (added to the stream before its ReLU) regrows.
    const m = model(5);
    const pruner = new FilterPruner(m, { rate: 0.3 });
    const initial = await pruner.computeMasks();
    pruner.apply(initial);
    const optimizer = new SGD(m.parameters(), { lr: 0.1, momentum: 0.9, weightDecay: 5e-4, nesterov: true });
    const rng = new Rng(6);
    for (let epoch = 0; epoch < 3; epoch++) {
      for (let i = 0; i < 3; i++) trainStep(m, optimizer, rng);
      if (epoch === 0) {
        const last = pruner.targets.find((t) => t.name === 'layer1.0.conv2')!;
        expect(await filterIsZero(last.conv.weight, initial.get(last.name)!.indexOf(0))).toBe(false);
      }
      pruner.apply(await pruner.computeMasks());
    }
    for (const t of pruner.targets.filter((t) => t.role !== 'last')) {
      const mask = initial.get(t.name)!;
      expect([...pruner.masks!.get(t.name)!], t.name).toEqual([...mask]);
      const velocity = await optimizer.velocity.get(t.conv.weight)!.toArray();
      const size = t.conv.weight.size / mask.length;
      for (let f = 0; f < mask.length; f++) if (!mask[f]) expect(velocity.subarray(f * size, (f + 1) * size).every((v) => v === 0), `${t.name}[${f}]`).toBe(true);
    }
    pruner.dispose();
  });

  it('masks are recomputed from the current weights, so the pruned set can change', async () => {
    const m = model(3);
    const pruner = new FilterPruner(m, { rate: 0.3 });
    const first = await pruner.computeMasks();
    pruner.apply(first);
    // Grow one pruned filter of the stem far above the others: the next masks must keep it.
    const stem = pruner.targets[0];
    const revived = first.get('conv1')!.indexOf(0);
    const w = await stem.conv.weight.toArray();
    const size = stem.conv.weight.size / stem.conv.outChannels;
    w.fill(10, revived * size, (revived + 1) * size);
    const { gpu } = await import('../../src/gpu/encoder.js');
    gpu().upload(stem.conv.weight.buffer, w);
    const second = await pruner.computeMasks();
    expect(second.get('conv1')![revived]).toBe(1);
    expect(second.changesFrom(first)).toBeGreaterThanOrEqual(2);
    pruner.dispose();
  });
});

describe('hard pruning', () => {
  it('keeps pruned filters at zero for many steps: weights and momentum are re-zeroed after every step', async () => {
    const m = model(4);
    const pruner = new FilterPruner(m, { rate: 0.4, mode: 'hard' });
    const optimizer = new SGD(m.parameters(), { lr: 0.1, momentum: 0.9, weightDecay: 5e-4, nesterov: true });
    pruner.apply(await pruner.computeMasks(), optimizer);
    const rng = new Rng(5);
    for (let i = 0; i < 8; i++) trainStep(m, optimizer, rng, () => pruner.zeroPruned(optimizer));
    for (const t of pruner.targets) {
      const mask = pruner.masks!.get(t.name)!;
      const velocity = optimizer.velocity.get(t.conv.weight)!;
      for (let f = 0; f < mask.length; f++) {
        if (mask[f]) continue;
        expect(await filterIsZero(t.conv.weight, f)).toBe(true);
        expect(await filterIsZero(velocity, f)).toBe(true);
      }
    }
    pruner.dispose();
  });
});

describe('options', () => {
  it('the coupled mode gives one mask to every conv that writes the same residual stream', async () => {
    const m = model(6);
    const pruner = new FilterPruner(m, { rate: 0.3, coupled: true });
    const masks = await pruner.computeMasks();
    const streams = new Map<number, string[]>();
    for (const t of pruner.targets) if (t.stream !== null) streams.set(t.stream, [...(streams.get(t.stream) ?? []), t.name]);
    expect(streams.get(0)).toEqual(['conv1', 'layer1.0.conv2', 'layer1.1.conv2', 'layer1.2.conv2']);
    for (const names of streams.values()) {
      for (const name of names) expect([...masks.get(name)!]).toEqual([...masks.get(names[0])!]);
    }
    // Inner convs keep their own masks: the ones each gets ranked alone.
    const plain = await new FilterPruner(m, { rate: 0.3 }).computeMasks();
    for (const t of pruner.targets.filter((t) => t.stream === null)) expect([...masks.get(t.name)!], t.name).toEqual([...plain.get(t.name)!]);
    expect(pruner.targets.filter((t) => t.stream === null)).toHaveLength(9);
  });

  it('the coupled mode prunes, in stages 2 and 3, only channels the option-A shortcut leaves constant', async () => {
    const m = model(16);
    const masks = await new FilterPruner(m, { rate: 0.3, coupled: true }).computeMasks();
    const plain = await new FilterPruner(m, { rate: 0.3 }).computeMasks();
    let previous = masks.get('conv1')!;
    for (const stage of [2, 3]) {
      const mask = masks.get(`layer${stage}.0.conv2`)!;
      expect(mask.length - mask.reduce((a, b) => a + b, 0)).toBe(Math.floor(mask.length * 0.3));
      // Channel j < previous width carries the previous stream: prunable only where that stream was pruned.
      for (let j = 0; j < mask.length; j++) if (!mask[j] && j < previous.length) expect(previous[j]).toBe(0);
      previous = mask;
    }
    // The control: ranked alone, the same weights prune some channel the shortcut keeps live.
    const first = masks.get('conv1')!;
    const alone = plain.get('layer2.0.conv2')!;
    expect([...alone].some((k, j) => !k && j < first.length && first[j] === 1)).toBe(true);
  });

  it('the coupled mode with the stem unpruned treats the first stream as live: stage 2 prunes only its zero-padded channels', async () => {
    const m = model(16);
    const masks = await new FilterPruner(m, { rate: 0.3, coupled: true, skipStem: true }).computeMasks();
    expect(masks.get('conv1')).toBeUndefined();
    // The unpruned stem writes all 16 channels of stream 0, so the shortcut carries them live into
    // channels 0-15 of stream 1 whatever stream 0's other writers prune; 9 of 32 fit in 16-31.
    const stage2 = masks.get('layer2.0.conv2')!;
    const pruned = [...stage2.keys()].filter((j) => !stage2[j]);
    expect(pruned).toHaveLength(9);
    for (const j of pruned) expect(j).toBeGreaterThanOrEqual(16);
  });

  it('the coupled mode with rates that rise by stage: a channel stage 2 prunes but its shortcut keeps live is not free for stage 3', async () => {
    const m = model(3);
    // Stage 2 prunes 22 of 32 channels; only the 16 zero-padded ones are constant in its stream (stage 1
    // prunes none), so stage 3's 19 must come from its 32 padded channels and those 16.
    const masks = await new FilterPruner(m, { rate: [0, 0.7, 0.3], coupled: true }).computeMasks();
    const stage2 = masks.get('layer2.0.conv2')!;
    const stage3 = masks.get('layer3.0.conv2')!;
    const pruned3 = [...stage3.keys()].filter((j) => !stage3[j]);
    expect(pruned3).toHaveLength(19);
    for (const j of pruned3) expect(j < 32 ? j >= 16 : true, `stage 3 pruned channel ${j}, live in stream 1`).toBe(true);
    // Stage 2 did prune live channels (below 16): the case the check is about.
    expect([...stage2.keys()].some((j) => j < 16 && !stage2[j])).toBe(true);
  });

  it('skips the stem and the last conv of each block on request, and takes one rate per stage', () => {
    const m = model(7);
    const skipped = new FilterPruner(m, { rate: 0.3, skipStem: true, skipLast: true });
    expect(skipped.targets.map((t) => t.role)).toEqual(new Array(9).fill('inner'));
    const perStage = new FilterPruner(m, { rate: [0.1, 0.2, 0.4] });
    const rates = perStage.targets.map((t) => perStage.rateFor(t, 0, 1));
    expect(rates[0]).toBe(0.1);
    expect(rates.at(-1)).toBe(0.4);
    expect(() => new FilterPruner(m, { rate: [0.1, 0.2] })).toThrow(/one pruning rate per stage/);
  });
});

describe('checkpoints', () => {
  it('masks, momentum and the position survive a checkpoint round trip', async () => {
    const m = model(8);
    const pruner = new FilterPruner(m, { rate: 0.3 });
    const optimizer = new SGD(m.parameters(), { lr: 0.1, momentum: 0.9, nesterov: true });
    pruner.apply(await pruner.computeMasks());
    trainStep(m, optimizer, new Rng(9));
    const host = await checkpointToHost({
      model: m.stateDict() as Map<string, Tensor>,
      optimizer: optimizer.velocityByName(m.namedParameters()),
      masks: pruner.masks!.byName(),
      meta: { epoch: 3, step: 17, schedule: { kind: 'onecycle', lr: 0.2 } },
    });
    const back = decodeCheckpoint(encodeCheckpoint(host));
    for (const t of pruner.targets) expect([...back.masks.get(t.name)!]).toEqual([...pruner.masks!.get(t.name)!]);
    const v = optimizer.velocity.get(m.conv1.weight)!;
    expect([...back.optimizer.get('conv1.weight')!.data]).toEqual([...(await v.toArray())]);
    expect(back.meta).toMatchObject({ epoch: 3, step: 17, schedule: { kind: 'onecycle', lr: 0.2 } });
    const restored = new FilterPruner(model(8), { rate: 0.3 });
    restored.restore(new FilterMasks(new Map([...back.masks].map(([name, mask]) => [name, { name, mask, threshold: NaN }]))));
    expect(restored.masks!.changesFrom(pruner.masks)).toBe(0);
  });
});

describe('FLOPs', () => {
  it("reproduces the paper's conv-only FLOPs (utils/cifar_resnet_flop.py)", () => {
    const cases: [number, number, string, string][] = [
      [20, 0, '4.055e+7', '0.0'],
      [20, 0.3, '2.343e+7', '42.2'],
      [56, 0.4, '5.944e+7', '52.6'],
      [110, 0.3, '1.498e+8', '40.8'],
      [32, 0.3, '4.028e+7', '41.5'],
    ];
    for (const [depth, rate, flops, reduction] of cases) {
      const f = paperConvFlops(depth, rate);
      expect(f.toExponential(3)).toBe(flops);
      expect((100 * (1 - f / paperConvFlops(depth, 0))).toFixed(1)).toBe(reduction);
    }
  });

  it('with skipped convs or a rate per stage, scales each conv by the float keep ratios of its output and input', () => {
    // Walks the model's convs as the pruner selects them: a conv's output keeps 1 − its rate where it is
    // pruned, its input keeps what the conv before it kept (the stem for the first block, the block's first
    // conv for its last), or the full stream.
    const reference = (options: PruneOptions) => {
      const m = model();
      const pruner = new FilterPruner(m, options);
      const keep = new Map(pruner.targets.map((t) => [t.name, 1 - pruner.rateFor(t, 1, 1)]));
      const outKeep = (name: string) => keep.get(name) ?? 1;
      let total = 0;
      for (const c of describeConvs(m)) {
        const size = 32 >> c.stage;
        const input = c.name === 'layer1.0.conv1' ? outKeep('conv1') : c.name.endsWith('conv2') ? outKeep(c.name.replace('conv2', 'conv1')) : 1;
        total += c.conv.inChannels * c.conv.outChannels * 9 * size * size * outKeep(c.name) * input;
      }
      return total;
    };
    const cases: PruneOptions[] = [
      { rate: 0.3 },
      { rate: 0.3, skipLast: true },
      { rate: 0.3, skipStem: true },
      { rate: [0.1, 0.2, 0.4], skipLast: true },
      { rate: 0.4, asymptotic: true },
    ];
    for (const options of cases) {
      expect(paperConvFlops(20, convRatesOf(options, 3))).toBeCloseTo(reference(options), 3);
    }
    // With the last convs unpruned the cut is about 31 %, not the 42.2 % of pruning every conv.
    const skipLast = 1 - paperConvFlops(20, convRatesOf({ rate: 0.3, skipLast: true }, 3)) / paperConvFlops(20, 0);
    expect(skipLast).toBeGreaterThan(0.2);
    expect(skipLast).toBeLessThan(0.35);
    // ASFP's rate part-way through training.
    expect(paperConvFlops(20, convRatesOf({ rate: 0.3, asymptotic: true }, 3, 1, 4))).toBeCloseTo(paperConvFlops(20, asymptoticRate(0.3, 1, 4)), 3);
  });

  it("ASFP's masks and FLOP rates agree: by default both take the final rate, part-way both take the grown one", async () => {
    const m = model(9);
    const pruner = new FilterPruner(m, { rate: 0.4, asymptotic: true });
    const zeroed = (masks: Awaited<ReturnType<FilterPruner['computeMasks']>>) => [...masks.get('layer1.0.conv1')!].filter((k) => !k).length;
    expect(pruner.convRates(1, 1).first[0]).toBe(0.4);
    expect(zeroed(await pruner.computeMasks())).toBe(Math.floor(16 * 0.4));
    expect(zeroed(await pruner.computeMasks(1, 4))).toBe(Math.floor(16 * asymptoticRate(0.4, 1, 4)));
    expect(zeroed(await pruner.computeMasks(0, 4))).toBe(0);
  });
});
