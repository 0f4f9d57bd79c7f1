// avgPool2d, maxPool2d and globalAvgPool (src/ops/pool.ts) against test/reference/pool.ts: cases worked by
// hand (including ties), then kernel 2/3 × stride 1/2 × padding 0/1 on odd shapes with backward against
// finite differences of the float64 reference.
//
// Ties in max pooling: the window's gradient goes to its FIRST maximum in row-major order (top-left first),
// as in PyTorch, so the result does not depend on thread scheduling. Finite differences cannot check this
// (max is not differentiable at a tie), so it is checked on exact cases.
import { describe, expect, it } from 'vitest';
import { avgPool2d, globalAvgPool, maxPool2d } from '../../src/ops/pool.js';
import { Tensor, scope, scopeAsync } from '../../src/tensor/tensor.js';
import { tensor } from '../../src/tensor/create.js';
import * as ref from '../reference/pool.js';
import { numel } from '../reference/elementwise.js';
import { assertEqual, readAll } from '../support/allclose.js';
import { gradcheck } from '../support/gradcheck.js';
import { randomArray, withSeed } from '../support/random.js';

describe('pooling: cases worked by hand', () => {
  // x (1×1×4×4):
  //   1  2  3  4
  //   5  6  7  8
  //   9 10 11 12
  //  13 14 15 16
  const x16 = Array.from({ length: 16 }, (_, i) => i + 1);

  it('2×2 stride 2: average (1+2+5+6)/4 = 3.5 …, max 6, 8, 14, 16; backward spreads dy/4 or routes it to the max', async () => {
    const [avg, max, dAvg, dMax] = await scopeAsync(async () => {
      const x = tensor(x16, [1, 1, 4, 4]);
      x.requiresGrad = true;
      const a = avgPool2d(x, 2);
      a.backward(tensor([4, 8, 12, 16], [1, 1, 2, 2]));
      const da = x.grad!;
      x.grad = null;
      const m = maxPool2d(x, 2);
      m.backward(tensor([1, 2, 3, 4], [1, 1, 2, 2]));
      return readAll([a, m, da, x.grad!]);
    });
    assertEqual(avg, [3.5, 5.5, 11.5, 13.5], { label: 'avg' });
    assertEqual(max, [6, 8, 14, 16], { label: 'max' });
    assertEqual(dAvg, [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4], { label: 'd avg' });
    assertEqual(dMax, [0, 0, 0, 0, 0, 1, 0, 2, 0, 0, 0, 0, 0, 3, 0, 4], { label: 'd max' });
  });

  it('3×3 stride 1 padding 1: average counts padding as zeros (divisor 9), max ignores it', async () => {
    const [avg, max] = await scopeAsync(async () => {
      const x = tensor(x16, [1, 1, 4, 4]);
      return readAll([avgPool2d(x, 3, { stride: 1, padding: 1 }), maxPool2d(tensor(x16.map((v) => -v), [1, 1, 4, 4]), 3, { stride: 1, padding: 1 })]);
    });
    // Corner (0, 0): (1 + 2 + 5 + 6) / 9 = 14/9; centre (1, 1): (1+2+3+5+6+7+9+10+11) / 9 = 6.
    expect(avg[0]).toBeCloseTo(14 / 9, 6);
    expect(avg[5]).toBe(6);
    // −x: the max of each window is its smallest |value|; padding (which would be 0) must not win.
    assertEqual(max, [-1, -1, -2, -3, -1, -1, -2, -3, -5, -5, -6, -7, -9, -9, -10, -11], { label: 'max of −x' });
  });

  it('ties: a window of equal values gives its whole gradient to the first (top-left) element; overlapping windows add up', async () => {
    const [y, dx] = await scopeAsync(async () => {
      // 3×3 of sevens, 2×2 windows at stride 1: window (i, j) has its first maximum at (i, j).
      const x = tensor(new Array(9).fill(7), [1, 1, 3, 3]);
      x.requiresGrad = true;
      const out = maxPool2d(x, 2, { stride: 1 });
      out.backward(tensor([1, 2, 4, 8], [1, 1, 2, 2]));
      return readAll([out, x.grad!]);
    });
    assertEqual(y, [7, 7, 7, 7]);
    assertEqual(dx, [1, 2, 0, 4, 8, 0, 0, 0, 0]);
    // A tie between positions 1 and 3 of one window: [[0, 5], [5, 1]] → the 5 at (0, 1) gets it.
    const [d2] = await scopeAsync(async () => {
      const x = tensor([0, 5, 5, 1], [1, 1, 2, 2]);
      x.requiresGrad = true;
      maxPool2d(x, 2).backward(tensor([3], [1, 1, 1, 1]));
      return readAll([x.grad!]);
    });
    assertEqual(d2, [0, 3, 0, 0]);
  });

  it('globalAvgPool averages each channel: [N, C, H, W] → [N, C], backward dy / (H·W)', async () => {
    const [y, dx] = await scopeAsync(async () => {
      const x = tensor([1, 2, 3, 4, 10, 20, 30, 40], [1, 2, 2, 2]);
      x.requiresGrad = true;
      const out = globalAvgPool(x);
      expect(out.shape).toEqual([1, 2]);
      out.backward(tensor([4, 8], [1, 2]));
      return readAll([out, x.grad!]);
    });
    assertEqual(y, [2.5, 25]);
    assertEqual(dx, [1, 1, 1, 1, 2, 2, 2, 2]);
  });

  it('rejects inputs that are not 4-D and windows that do not fit', () => {
    scope(() => {
      expect(() => maxPool2d(Tensor.empty([2, 3, 4]), 2)).toThrow(/maxPool2d: expected \[batch, channels, h, w\]/);
      expect(() => avgPool2d(Tensor.empty([1, 1, 2, 2]), 3)).toThrow(/avgPool2d: a 3×3 window does not fit/);
      expect(() => globalAvgPool(Tensor.empty([2, 3]))).toThrow(/globalAvgPool: expected/);
    });
  });
});

/** [N, C, outH, outW] from the reference's window arithmetic. */
function poolOutputShape(shape: number[], kernel: number, stride: number, padding: number): number[] {
  const g = ref.poolGeometry(shape, kernel, stride, padding);
  return [g.batch, g.channels, g.outH, g.outW];
}

describe('pooling: random shapes against the float64 reference, backward against finite differences', () => {
  const configs = [2, 3].flatMap((kernel) => [1, 2].flatMap((stride) => [0, 1].map((padding) => ({ kernel, stride, padding }))));
  const shapes = [
    [2, 3, 7, 5],
    [1, 5, 6, 9],
    [3, 2, 5, 5],
  ];

  for (const kind of ['avg', 'max'] as const) {
    it(`${kind}Pool2d: kernel 2/3, stride 1/2, padding 0/1 on odd shapes and a batch of 1`, async () => {
      await withSeed(`${kind} pool`, async (rng, seed) => {
        for (const { kernel, stride, padding } of configs) {
          for (const shape of shapes) {
            // Distinct random values: no ties, and no two within a finite-difference step of each other.
            const x = randomArray(rng, numel(shape), -2, 2);
            await gradcheck(
              {
                label: `${kind}Pool2d k${kernel} s${stride} p${padding} [${shape.join(', ')}]`,
                inputs: [{ data: x, shape }],
                op: (t) => (kind === 'avg' ? avgPool2d : maxPool2d)(t, kernel, { stride, padding }),
                reference: (t) => (kind === 'avg' ? ref.avgPool2d : ref.maxPool2d)(t, shape, kernel, stride, padding),
                outputShape: poolOutputShape(shape, kernel, stride, padding),
                reductionLength: kernel * kernel,
                seed,
              },
              rng,
            );
          }
        }
      });
    });
  }

  it('globalAvgPool on [2, 5, 7, 3] and [1, 64, 8, 8]', async () => {
    await withSeed('global avg pool', async (rng, seed) => {
      for (const shape of [[2, 5, 7, 3], [1, 64, 8, 8]]) {
        await gradcheck(
          {
            label: `globalAvgPool [${shape.join(', ')}]`,
            inputs: [{ data: randomArray(rng, numel(shape)), shape }],
            op: (t) => globalAvgPool(t),
            reference: (t) => ref.globalAvgPool(t, shape),
            outputShape: shape.slice(0, 2),
            reductionLength: shape[2] * shape[3],
            seed,
          },
          rng,
        );
      }
    });
  });

  it('the float64 max-pool backward (first maximum) agrees with finite differences when there are no ties', async () => {
    await withSeed('max pool reference backward', (rng) => {
      const shape = [2, 2, 5, 6];
      const x = Float64Array.from(randomArray(rng, numel(shape), -2, 2));
      const y = ref.maxPool2d(x, shape, 3, 2, 1);
      const dy = randomArray(rng, y.length);
      const analytic = ref.maxPool2dBackward(x, shape, dy, 3, 2, 1);
      const h = 1e-6;
      for (let i = 0; i < x.length; i++) {
        const saved = x[i];
        x[i] = saved + h;
        const plus = ref.maxPool2d(x, shape, 3, 2, 1).reduce((s, v, o) => s + v * dy[o], 0);
        x[i] = saved - h;
        const minus = ref.maxPool2d(x, shape, 3, 2, 1).reduce((s, v, o) => s + v * dy[o], 0);
        x[i] = saved;
        expect(Math.abs((plus - minus) / (2 * h) - analytic[i])).toBeLessThan(1e-8);
      }
    });
  });
});
