// BN recalibration after masking: the running statistics are re-estimated from training batches, so a
// zeroed filter's channel gets mean 0 and variance 0, and the old statistics leave no trace.
import { mkdtemp, rm, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { prunerFor, pruningRate, trainModel } from '../../src/cli/train.js';
import { parseArgs } from '../../src/cli/args.js';
import { syntheticCifar10 } from '../../src/data/synthetic.js';
import { cifarResNet } from '../../src/models/resnet.js';
import { FilterPruner } from '../../src/prune/sfp.js';
import { LoaderSource } from '../../src/train/sources.js';
import { Trainer } from '../../src/train/trainer.js';
import { recalibrateBatchNorm } from '../../src/train/recalibrate.js';
import { gpu } from '../../src/gpu/encoder.js';
import { conv2d } from '../../src/ops/conv2d.js';
import { noGrad } from '../../src/autograd/mode.js';
import { Tensor, scope, scopeAsync } from '../../src/tensor/tensor.js';
import type { DataSplits } from '../../src/data/node-files.js';

const silent = { status: () => {}, line: () => {} };
const data: DataSplits = { train: syntheticCifar10(32, 1), test: syntheticCifar10(16, 2), kind: 'synthetic', dir: '', description: 'synthetic' };
const dirs: string[] = [];

afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/** Test accuracy and mean cross-entropy in evaluation mode, from the model's logits on the host (not Trainer.evaluate). */
async function evaluateOnHost(model: ReturnType<typeof cifarResNet>): Promise<{ accuracy: number; loss: number }> {
  const test = new LoaderSource(data.test, { batchSize: 500, train: false });
  let correct = 0;
  let lossSum = 0;
  let count = 0;
  model.eval();
  for (const batch of test.batches()) {
    const [logits] = await scopeAsync(async () => {
      const out = noGrad(() => model.forward(Tensor.fromArray(batch.x, [batch.size, 3, 32, 32])));
      return [(await out.toArray()) as Float32Array];
    });
    for (let b = 0; b < batch.size; b++) {
      const row = Array.from(logits.subarray(b * 10, b * 10 + 10));
      const top = Math.max(...row);
      const label = batch.y[b];
      if (row.indexOf(top) === label) correct++;
      lossSum += top + Math.log(row.reduce((s, v) => s + Math.exp(v - top), 0)) - row[label];
    }
    count += batch.size;
  }
  model.train();
  return { accuracy: correct / count, loss: lossSum / count };
}

/** The trainer sums float32 losses on the GPU: equal to the host's float64 mean up to float32 rounding (stale statistics give losses near 1e4). */
function expectSameLoss(recorded: unknown, host: number): void {
  expect(Math.abs((recorded as number) - host)).toBeLessThanOrEqual(1e-5 * Math.max(1, Math.abs(host)));
}

async function stats(model: ReturnType<typeof cifarResNet>): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const [name, b] of model.namedBuffers()) out.set(name, (await b.toArray()) as Float32Array);
  return out;
}

describe('recalibrateBatchNorm', () => {
  it('gives a zeroed filter mean 0 and variance 0, and does not depend on the old statistics', async () => {
    const model = cifarResNet('resnet20', 3);
    const pruner = new FilterPruner(model, { rate: 0.3 });
    const masks = await pruner.computeMasks();
    pruner.apply(masks);
    const source = () => new LoaderSource(data.train, { batchSize: 8, train: true, seed: 5 });

    expect(recalibrateBatchNorm(model, source(), 3)).toBe(3);
    const first = await stats(model);
    const stemMask = masks.get('conv1')!;
    const mean = first.get('bn1.running_mean')!;
    const variance = first.get('bn1.running_var')!;
    let pruned = 0;
    for (let c = 0; c < stemMask.length; c++) {
      if (stemMask[c]) {
        expect(variance[c]).toBeGreaterThan(0);
      } else {
        pruned++;
        expect(mean[c]).toBe(0);
        expect(variance[c]).toBe(0);
      }
    }
    expect(pruned).toBe(4);
    // The estimate is the plain average over the 3 batches of each batch's mean and unbiased variance of
    // the stem's conv output (what bn1 normalises).
    const expectedMean = new Float64Array(16);
    const expectedVar = new Float64Array(16);
    for (const batch of [...source().batches()].slice(0, 3)) {
      const out = noGrad(() => scope(() => conv2d(Tensor.fromArray(batch.x, [batch.size, 3, 32, 32]), model.conv1.weight, null, { stride: 1, padding: 1 })));
      const y = (await out.toArray()) as Float32Array;
      out.dispose();
      const n = batch.size * 32 * 32;
      for (let c = 0; c < 16; c++) {
        let s = 0;
        for (let b = 0; b < batch.size; b++) for (let k = 0; k < 1024; k++) s += y[(b * 16 + c) * 1024 + k];
        const m = s / n;
        let ss = 0;
        for (let b = 0; b < batch.size; b++) for (let k = 0; k < 1024; k++) ss += (y[(b * 16 + c) * 1024 + k] - m) ** 2;
        expectedMean[c] += m / 3;
        expectedVar[c] += ss / (n - 1) / 3;
      }
    }
    for (let c = 0; c < 16; c++) {
      expect(mean[c]).toBeCloseTo(expectedMean[c], 4);
      expect(Math.abs(variance[c] - expectedVar[c]), `channel ${c}`).toBeLessThanOrEqual(1e-4 * Math.max(expectedVar[c], 1e-6));
    }

    // Garbage statistics before a second recalibration on the same batches: the same result.
    for (const [name, b] of model.namedBuffers()) {
      if (name.includes('running')) gpu().upload(b.buffer, new Float32Array(b.size).fill(name.endsWith('var') ? 123 : -45));
    }
    recalibrateBatchNorm(model, source(), 3);
    const second = await stats(model);
    // Non-finite statistics (a diverged run's) leave no trace either: a NaN times a momentum of 0 is NaN.
    for (const [name, b] of model.namedBuffers()) {
      if (name.includes('running')) gpu().upload(b.buffer, new Float32Array(b.size).fill(name.endsWith('var') ? NaN : Infinity));
    }
    recalibrateBatchNorm(model, source(), 3);
    const third = await stats(model);
    for (const [name, values] of first) {
      if (!name.includes('running')) continue;
      for (const again of [second.get(name)!, third.get(name)!]) {
        for (let i = 0; i < values.length; i++) expect(again[i]).toBeCloseTo(values[i], 5);
      }
    }
    pruner.dispose();
  });

  it('a restarted source yields the same augmented batches, so recalibration after a resume repeats the first run', () => {
    const firstBatch = (s: LoaderSource) => [...s.batches()][0].x;
    const used = new LoaderSource(data.train, { batchSize: 8, train: true, seed: 5 });
    used.restart();
    const original = firstBatch(used);
    for (let i = 0; i < 3; i++) [...used.batches()]; // epochs of draws, as recalibrations after several epochs make
    used.restart();
    expect(firstBatch(used)).toEqual(original);
    // A fresh source, as a resumed run builds, starts where the first run's restarted one does.
    const fresh = new LoaderSource(data.train, { batchSize: 8, train: true, seed: 5 });
    fresh.restart();
    expect(firstBatch(fresh)).toEqual(original);
  });

  it('train --bn-recalibrate records the masked accuracy before and after recalibration', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sfp-recalibrate-'));
    dirs.push(dir);
    // The statistics the recalibration replaces, copied when it restarts its own source (neither of the trainer's):
    // it does that before it resets anything, and the copies run in queue order, ahead of the reset.
    const runs = vi.spyOn(Trainer.prototype, 'run');
    const restart = LoaderSource.prototype.restart;
    const staleBuffers: Promise<Float32Array[]>[] = [];
    const restarts = vi.spyOn(LoaderSource.prototype, 'restart').mockImplementation(function (this: LoaderSource) {
      const trainer = runs.mock.contexts[0] as Trainer | undefined;
      if (trainer && this !== trainer.train && this !== trainer.test) {
        staleBuffers.push(Promise.all(trainer.model.namedBuffers().map(([, b]) => b.toArray() as Promise<Float32Array>)));
      }
      restart.call(this);
    });
    const run = await trainModel(
      parseArgs('train', ['--model', 'resnet20', '--epochs', '1', '--batch-size', '8', '--warmup-epochs', '0', '--lr', '0.05', '--sfp-rate', '0.3', '--bn-recalibrate', '2', '--out', dir]),
      { sink: silent, data },
    ).finally(() => {
      runs.mockRestore();
      restarts.mockRestore();
    });
    const record = run.records[0];
    expect(record.bnRecalibrationBatches).toBe(2);
    // The run ends with the masked model and its recalibrated statistics: "after" is that model's evaluation.
    const after = await evaluateOnHost(run.model);
    expect(record.testAccuracyMasked).toBe(after.accuracy);
    expectSameLoss(record.testLossMasked, after.loss);
    // "Before" is the same masked weights with the statistics the one recalibration replaced.
    expect(staleBuffers).toHaveLength(1);
    const stale = await staleBuffers[0];
    run.model.namedBuffers().forEach(([, b], i) => gpu().upload(b.buffer, stale[i]));
    const before = await evaluateOnHost(run.model);
    expect(record.testAccuracyMaskedStaleBN).toBe(before.accuracy);
    expectSameLoss(record.testLossMaskedStaleBN, before.loss);
    // The two differ, so neither equality above could hold with the other evaluation in its place.
    expect(Math.abs(before.loss - after.loss)).toBeGreaterThan(1e-3);
    const lines = (await readFile(join(dir, 'metrics.jsonl'), 'utf8')).trim().split('\n');
    expect(JSON.parse(lines[0]).bnRecalibrationBatches).toBe(2);
    run.trainer.dispose();
  });

  it('pruning options without a rate are a usage error', () => {
    expect(() => prunerArgs(['--coupled'])).toThrow('train: --coupled needs --sfp-rate or --stage-rates');
    expect(() => prunerArgs(['--hard-prune', '--bn-recalibrate', '5'])).toThrow('train: --hard-prune, --bn-recalibrate need --sfp-rate or --stage-rates');
    expect(() => prunerArgs(['--sfp-rate', '0.3', '--stage-rates', '0.1,0.2,0.3'])).toThrow(/not both/);
    expect(() => pruningRate(parseArgs('train', ['--stage-rates', '0.2,0.3']))).toThrow('train: --stage-rates needs one rate per stage of resnet20 (3), got 2');
    expect(() => prunerArgs(['--prune-every-steps', '50'])).toThrow(/--sfp-rate or --stage-rates/);
    // Asked for, yet a dense run would ignore them.
    expect(() => prunerArgs(['--criterion', 'fpgm', '--prune-every', '3'])).toThrow('train: --criterion, --prune-every need --sfp-rate or --stage-rates');
    expect(() => prunerArgs(['--criterion', 'l2'])).toThrow('train: --criterion needs --sfp-rate or --stage-rates');
    expect(() => prunerArgs(['--sfp-rate', '0.3', '--hard-prune', '--prune-every-steps', '50'])).toThrow(/hard pruning keeps its first masks/);
    expect(() => prunerArgs(['--sfp-rate', '0.3', '--hard-prune', '--asymptotic'])).toThrow(/hard pruning keeps the masks it chose before training/);
  });
});

function prunerArgs(extra: string[]) {
  return prunerFor(cifarResNet('resnet20'), parseArgs('train', ['--model', 'resnet20', ...extra]));
}
