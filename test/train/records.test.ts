// What a pruned run's epoch records hold beyond accuracy: the paper's conv FLOPs at the rate the
// record's masks were chosen with, so an ASFP run's records follow its growing rate.
import { describe, expect, it, vi } from 'vitest';
import { CifarResNet } from '../../src/models/resnet.js';
import { SGD } from '../../src/optim/sgd.js';
import { LrSchedule } from '../../src/optim/schedule.js';
import { Trainer } from '../../src/train/trainer.js';
import { LoaderSource } from '../../src/train/sources.js';
import { pruningHooks } from '../../src/train/pruning.js';
import { FilterPruner } from '../../src/prune/sfp.js';
import { syntheticCifar10 } from '../../src/data/synthetic.js';
import { asymptoticRate } from '../../src/prune/criteria.js';
import { paperConvFlops } from '../../src/prune/flops.js';

const silent = { status: () => {}, line: () => {} };

describe('epoch records of a pruned run', () => {
  it("ASFP's records give the paper's conv FLOPs at the rate of that epoch's masks", async () => {
    const widths = [4, 8, 12];
    const model = new CifarResNet(20, 10, 5, widths);
    const optimizer = new SGD(model.parameters(), { lr: 0.05, momentum: 0.9, weightDecay: 5e-4, nesterov: true });
    const train = new LoaderSource(syntheticCifar10(16, 3), { batchSize: 8, train: true, seed: 9 });
    const pruner = new FilterPruner(model, { rate: 0.3, asymptotic: true });
    const schedule = new LrSchedule({ kind: 'cosine', lr: 0.05, epochs: 2 });
    const hooks = pruningHooks(pruner, { epochs: 2 }, null);
    const trainer = new Trainer(model, optimizer, train, null, { epochs: 2, schedule }, null, silent, hooks);
    const [first, last] = await trainer.run();
    // The masks after epoch 1 of 2 are chosen at the rate ASFP has reached then, the last at the full rate.
    expect(first.paperConvFlops).toBeCloseTo(paperConvFlops(20, asymptoticRate(0.3, 1, 2), widths), 3);
    expect(last.paperConvFlops).toBeCloseTo(paperConvFlops(20, 0.3, widths), 3);
    expect(first.paperConvFlops as number).toBeGreaterThan(last.paperConvFlops as number);
    trainer.dispose();
    pruner.dispose();
  });

  it('an epoch end that masks nothing (hard pruning, an epoch --prune-every skips) evaluates the test set once, and its masked accuracy is the record\'s own', async () => {
    const widths = [4, 8, 12];
    const data = syntheticCifar10(16, 3);
    for (const [mode, pruneEvery, epochs, evaluations] of [
      ['hard', 1, 2, 2], // one evaluation per epoch
      ['soft', 2, 3, 5], // epochs 1 and 3 mask (and evaluate again), epoch 2 does not
    ] as const) {
      const model = new CifarResNet(20, 10, 5, widths);
      const optimizer = new SGD(model.parameters(), { lr: 0.05, momentum: 0.9 });
      const train = new LoaderSource(data, { batchSize: 8, train: true, seed: 9 });
      const test = new LoaderSource(data, { batchSize: 8, train: false });
      const pruner = new FilterPruner(model, { rate: 0.3, mode });
      const hooks = pruningHooks(pruner, { epochs, pruneEvery }, test);
      const schedule = new LrSchedule({ kind: 'cosine', lr: 0.05, epochs });
      const trainer = new Trainer(model, optimizer, train, test, { epochs, schedule }, null, silent, hooks);
      const evaluate = vi.spyOn(trainer, 'evaluate');
      const records = await trainer.run();
      expect(evaluate, `${mode}, every ${pruneEvery}`).toHaveBeenCalledTimes(evaluations);
      const unmasked = mode === 'hard' ? records : [records[1]];
      for (const r of unmasked) expect(r.testAccuracyMasked).toBe(r.testAccuracy);
      trainer.dispose();
      pruner.dispose();
    }
  });
});
