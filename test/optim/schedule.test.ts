// Learning-rate schedules (src/optim/schedule.ts): the SFP paper's CIFAR schedule, multistep with
// cumulative gammas, warm-up, cosine and one-cycle endpoints, and the errors for bad options.
import { describe, expect, it } from 'vitest';
import { LrSchedule, sfpPaperSchedule } from '../../src/optim/schedule.js';
import { parseArgs } from '../../src/cli/args.js';
import { scheduleFrom } from '../../src/cli/train.js';

describe('LrSchedule', () => {
  it('the SFP paper schedule is 0.01 for the whole first epoch, then 0.1, ×0.2 at 60, 120 and 160 (cumulative)', () => {
    const s = sfpPaperSchedule();
    // Every step of epoch 0 (progress = epoch + step / stepsPerEpoch) gets exactly 0.01: no ramp.
    for (const progress of [0, 0.001, 0.25, 0.5, 0.999]) expect(s.at(progress), `epoch ${progress}`).toBe(0.01);
    const expected: [number, number][] = [
      [1, 0.1],
      [30.5, 0.1],
      [59.99, 0.1],
      [60, 0.02],
      [119, 0.02],
      [120, 0.004],
      [159.5, 0.004],
      [160, 0.0008],
      [199.99, 0.0008],
    ];
    for (const [epoch, lr] of expected) expect(s.at(epoch), `epoch ${epoch}`).toBeCloseTo(lr, 12);
    // A shorter run keeps the milestones that fall inside it.
    const short = sfpPaperSchedule(100);
    expect(short.at(0.5)).toBe(0.01);
    expect(short.at(99)).toBeCloseTo(0.02, 12);
  });

  it('multistep multiplies cumulatively: one gamma for every milestone, or one gamma each', () => {
    const single = new LrSchedule({ kind: 'multistep', lr: 1, epochs: 90, milestones: [30, 60, 80] });
    expect([0, 29.9, 30, 60, 80, 89].map((e) => single.at(e))).toEqual([1, 1, 0.1, 0.1 * 0.1, 0.1 * 0.1 * 0.1, 0.1 * 0.1 * 0.1]);
    const each = new LrSchedule({ kind: 'multistep', lr: 0.5, epochs: 10, milestones: [2, 5], gamma: [0.5, 4] });
    expect([1, 2, 4, 5, 9].map((e) => each.at(e))).toEqual([0.5, 0.25, 0.25, 1, 1]);
    expect(new LrSchedule({ kind: 'constant', lr: 0.3, epochs: 5 }).at(4.5)).toBe(0.3);
  });

  it('linear warm-up rises from lr·warmupStart to lr over warmupEpochs, then the schedule takes over', () => {
    const s = new LrSchedule({ kind: 'multistep', lr: 0.1, epochs: 10, milestones: [5], gamma: 0.5, warmupEpochs: 2, warmupStart: 0.2 });
    expect(s.at(0)).toBeCloseTo(0.02, 15);
    expect(s.at(1)).toBeCloseTo(0.06, 15);
    expect(s.at(2)).toBe(0.1);
    expect(s.at(5)).toBe(0.05);
  });

  it('a constant warm-up holds lr·warmupStart until warmupEpochs, then the schedule takes over', () => {
    const s = new LrSchedule({ kind: 'cosine', lr: 0.1, epochs: 10, warmupEpochs: 2, warmupStart: 0.2, warmupShape: 'constant' });
    for (const progress of [0, 1, 1.999]) expect(s.at(progress), `epoch ${progress}`).toBeCloseTo(0.02, 15);
    expect(s.at(2)).toBeCloseTo(0.1, 15);
  });

  it("train's default schedule (no flags) is the SFP paper's, step for step, epoch 0 included", () => {
    const cli = scheduleFrom(parseArgs('train', []));
    const paper = sfpPaperSchedule();
    for (const progress of [0, 0.25, 0.5, 0.999, 1, 30, 59.99, 60, 119.5, 120, 159.9, 160, 199.99]) {
      expect(cli.at(progress), `epoch ${progress}`).toBeCloseTo(paper.at(progress), 15);
    }
  });

  it('cosine starts at lr (after warm-up), is halfway at the middle, and ends at lr·finalFraction', () => {
    const s = new LrSchedule({ kind: 'cosine', lr: 0.2, epochs: 100, finalFraction: 0.01 });
    expect(s.at(0)).toBeCloseTo(0.2, 15);
    expect(s.at(50)).toBeCloseTo((0.2 + 0.002) / 2, 15);
    expect(s.at(100)).toBeCloseTo(0.002, 15);
    expect(s.at(150)).toBeCloseTo(0.002, 15);
    // A quarter and three quarters of the way: the cosine's (1 ± 1/√2)/2, where a straight line gives 3/4 and 1/4.
    expect(s.at(25)).toBeCloseTo(0.002 + 0.198 * (1 + Math.SQRT1_2) / 2, 15);
    expect(s.at(75)).toBeCloseTo(0.002 + 0.198 * (1 - Math.SQRT1_2) / 2, 15);
    const warm = new LrSchedule({ kind: 'cosine', lr: 0.2, epochs: 100, warmupEpochs: 5 });
    expect(warm.at(5)).toBeCloseTo(0.2, 15);
    expect(warm.at(100)).toBeCloseTo(0, 15);
    expect(warm.at(52.5)).toBeCloseTo(0.1, 15);
  });

  it('one-cycle goes from lr·startFraction up to lr at peakAt and down to lr·finalFraction at the end', () => {
    const s = new LrSchedule({ kind: 'onecycle', lr: 0.4, epochs: 20, peakAt: 0.3, startFraction: 0.04, finalFraction: 1e-3 });
    expect(s.at(0)).toBeCloseTo(0.016, 15);
    expect(s.at(6)).toBeCloseTo(0.4, 15);
    expect(s.at(3)).toBeCloseTo((0.016 + 0.4) / 2, 15);
    expect(s.at(20)).toBeCloseTo(4e-4, 15);
    for (let e = 6; e < 20; e += 0.5) expect(s.at(e + 0.5)).toBeLessThanOrEqual(s.at(e));
    // The fall is a cosine: a quarter of the way down (epoch 6 + 14/4) it is at (1 + 1/√2)/2 of its span.
    expect(s.at(9.5)).toBeCloseTo(4e-4 + (0.4 - 4e-4) * (1 + Math.SQRT1_2) / 2, 15);
  });

  it('one-cycle by default starts at 4 % of lr, peaks a quarter of the way in and ends at 0.1 %', () => {
    const s = new LrSchedule({ kind: 'onecycle', lr: 0.2, epochs: 10 });
    expect(s.at(0)).toBeCloseTo(0.008, 15);
    expect(s.at(1.25)).toBeCloseTo((0.008 + 0.2) / 2, 15);
    expect(s.at(2.5)).toBeCloseTo(0.2, 15);
    expect(s.at(10)).toBeCloseTo(2e-4, 15);
  });

  it('rejects a rate or length that is not positive, gammas that do not match the milestones, a negative warm-up, a peak outside (0, 1)', () => {
    expect(() => new LrSchedule({ kind: 'constant', lr: 0, epochs: 1 })).toThrow('learning rate must be > 0, got 0');
    expect(() => new LrSchedule({ kind: 'constant', lr: NaN, epochs: 1 })).toThrow(/learning rate must be > 0/);
    expect(() => new LrSchedule({ kind: 'cosine', lr: 0.1, epochs: 0 })).toThrow('epochs must be > 0, got 0');
    expect(() => new LrSchedule({ kind: 'multistep', lr: 0.1, epochs: 10, milestones: [3, 6], gamma: [0.1] })).toThrow(
      'multistep: 1 gammas for 2 milestones',
    );
    expect(() => new LrSchedule({ kind: 'cosine', lr: 0.1, epochs: 10, warmupEpochs: -1 })).toThrow('warmupEpochs must be ≥ 0, got -1');
    expect(() => new LrSchedule({ kind: 'onecycle', lr: 0.1, epochs: 10, peakAt: 1 })).toThrow('onecycle: peakAt must be in (0, 1), got 1');
    expect(() => new LrSchedule({ kind: 'onecycle', lr: 0.1, epochs: 10, peakAt: 0 })).toThrow(/peakAt/);
  });
});
