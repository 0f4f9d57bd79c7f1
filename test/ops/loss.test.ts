// Softmax cross-entropy, argmax and correct counts (src/ops/loss.ts) against test/reference/loss.ts.
import { describe, expect, it } from 'vitest';
import { argmax, correctCount, softmaxCrossEntropy } from '../../src/ops/loss.js';
import { Tensor, scope, scopeAsync } from '../../src/tensor/tensor.js';
import { tensor } from '../../src/tensor/create.js';
import * as ref from '../reference/loss.js';
import { assertClose, assertEqual, readAll } from '../support/allclose.js';
import { gradcheck, tolerance } from '../support/gradcheck.js';
import { randomArray, randomLabels, withSeed } from '../support/random.js';

const labels = (values: number[]) => tensor(values, [values.length], 'u32');

describe('loss: exact small cases', () => {
  it('equal logits give log(classes) per row; the gradient of the mean is (¼ − onehot) / rows exactly', async () => {
    const [loss, total, grad] = await scopeAsync(async () => {
      const x = Tensor.fromArray(new Array(8).fill(0), [2, 4]);
      x.requiresGrad = true;
      const y = labels([1, 3]);
      const l = softmaxCrossEntropy(x, y);
      l.backward();
      return readAll([l, softmaxCrossEntropy(x, y, 'sum'), x.grad!]);
    });
    assertClose(loss, [Math.log(4)], { rtol: 2e-7 });
    assertClose(total, [2 * Math.log(4)], { rtol: 2e-7 });
    // softmax = ¼ everywhere; d mean / d x = (¼ − onehot) / 2
    assertEqual(grad, [0.125, -0.375, 0.125, 0.125, 0.125, 0.125, 0.125, -0.375]);
  });

  it('argmax takes the first of tied maxima, and correctCount counts rows whose argmax is the label', async () => {
    const outs = scope(() => {
      // rows: [1, 5, 5] → 1; [-1, -2, -3] → 0; [0, 0, 7] → 2; [2, 2, 2] → 0
      const x = tensor([1, 5, 5, -1, -2, -3, 0, 0, 7, 2, 2, 2], [4, 3]);
      return [argmax(x), correctCount(x, labels([1, 0, 1, 2])), correctCount(x, labels([2, 1, 0, 1]))];
    });
    const [indices, hits, misses] = await readAll(outs);
    expect(outs[0].dtype).toBe('u32');
    assertEqual(indices, [1, 0, 2, 0]);
    assertEqual(hits, [2]);
    assertEqual(misses, [0]);
    for (const t of outs) t.dispose();
  });

  it('is stable for large logits: [1000, 0] with label 0 gives 0 and with label 1 gives 1000', async () => {
    const [right, wrong] = await scopeAsync(async () => {
      const x = tensor([1000, 0, 0, 1000], [2, 2]);
      return readAll([softmaxCrossEntropy(x, labels([0, 1]), 'sum'), softmaxCrossEntropy(x, labels([1, 0]), 'sum')]);
    });
    assertEqual(right, [0]);
    assertClose(wrong, [2000], { rtol: 1e-7 });
  });

  it('an out-of-range label gives NaN rather than reading another row', async () => {
    const [loss] = await scopeAsync(async () => readAll([softmaxCrossEntropy(tensor([1, 2, 3, 4], [2, 2]), labels([0, 7]), 'sum')]));
    expect(Number.isNaN(loss[0])).toBe(true);
  });

  it('rejects labels of the wrong type or length, and logits that are not 2-D', () => {
    scope(() => {
      const x = Tensor.empty([3, 4]);
      expect(() => softmaxCrossEntropy(x, labels([0, 1]))).toThrow(/labels must be u32 \[3\], got \[2\] u32/);
      expect(() => softmaxCrossEntropy(x, tensor([0, 1, 2]))).toThrow(/labels must be u32 \[3\], got \[3\] f32/);
      expect(() => argmax(Tensor.empty([12]))).toThrow(/2-D f32 \[batch, classes\], got \[12\] f32/);
    });
  });
});

describe('loss: random batches against the float64 reference', () => {
  it('loss (mean and sum), argmax and correct count for awkward batch and class counts', async () => {
    await withSeed('loss random', async (rng, seed) => {
      const shapes = [[1, 2], [3, 10], [17, 17], [129, 10], [64, 100], [5, 1000]];
      const cases = shapes.map(([rows, classes]) => ({ rows, classes, x: randomArray(rng, rows * classes, -5, 5), y: randomLabels(rng, rows, classes) }));
      const outs = scope(() =>
        cases.flatMap(({ rows, classes, x, y }) => {
          const logits = tensor(x, [rows, classes]);
          const l = tensor(y, [rows], 'u32');
          return [softmaxCrossEntropy(logits, l), softmaxCrossEntropy(logits, l, 'sum'), argmax(logits), correctCount(logits, l)];
        }),
      );
      const values = await readAll(outs);
      cases.forEach(({ rows, classes, x, y }, i) => {
        const label = (what: string) => `${what} [${rows}, ${classes}]`;
        const [m, s, am, cc] = values.slice(4 * i, 4 * i + 4);
        assertClose(m, [ref.softmaxCrossEntropy(x, y, rows, classes, 'mean')], { ...tolerance(classes, 4), label: label('mean loss'), seed });
        assertClose(s, [ref.softmaxCrossEntropy(x, y, rows, classes, 'sum')], { ...tolerance(classes + rows, 4), label: label('summed loss'), seed });
        assertEqual(am, ref.argmax(x, rows, classes), { label: label('argmax'), seed });
        assertEqual(cc, [ref.correctCount(x, y, rows, classes)], { label: label('correct count'), seed });
      });
      for (const t of outs) t.dispose();
    });
  });
});

describe('loss: backward against finite differences', () => {
  for (const reduction of ['mean', 'sum'] as const) {
    it(`softmaxCrossEntropy (${reduction}): gradient of the logits, none for the labels`, async () => {
      await withSeed(`loss grad ${reduction}`, async (rng, seed) => {
        for (const [rows, classes] of [[1, 2], [3, 10], [17, 5], [4, 33]]) {
          await gradcheck(
            {
              label: `softmaxCrossEntropy [${rows}, ${classes}] ${reduction}`,
              inputs: [
                { data: randomArray(rng, rows * classes, -3, 3), shape: [rows, classes] },
                { data: randomLabels(rng, rows, classes), shape: [rows], dtype: 'u32' },
              ],
              op: (x, y) => softmaxCrossEntropy(x, y, reduction),
              reference: (x, y) => [ref.softmaxCrossEntropy(x, y, rows, classes, reduction)],
              // Both reductions return a scalar (rank 0), as reduce over all axes does.
              outputShape: [],
              reductionLength: rows + classes,
              slack: 4,
              seed,
            },
            rng,
          );
        }
      });
    });
  }
});
