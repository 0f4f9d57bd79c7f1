// Reductions (src/ops/reduce.ts) against test/reference/reduce.ts: exact small cases, random shapes and
// axis sets (adjacent and not, negative, keepDims), the long-axis two-pass path, and gradients.
import { describe, expect, it } from 'vitest';
import { max, mean, sum, sumTo } from '../../src/ops/reduce.js';
import { Tensor, scope, scopeAsync } from '../../src/tensor/tensor.js';
import { tensor } from '../../src/tensor/create.js';
import type { Rng } from '../../src/tensor/random.js';
import * as ref from '../reference/reduce.js';
import { numel } from '../reference/elementwise.js';
import { assertClose, assertEqual, readAll } from '../support/allclose.js';
import { gradcheck, tolerance } from '../support/gradcheck.js';
import { assertNoLeak } from '../support/memory.js';
import { noGrad } from '../../src/autograd/mode.js';
import { randomArray, randomShape, withSeed } from '../support/random.js';

const ops = { sum, mean, max } as const;
type Op = keyof typeof ops;

/** A random non-empty subset of the axes, sometimes written with negative indices, sometimes undefined (all). */
function randomAxes(rng: Rng, rank: number): number[] | number | undefined {
  if (rng.uniform() < 0.1) return undefined;
  const axes = [...Array(rank).keys()].filter(() => rng.uniform() < 0.5);
  if (axes.length === 0) axes.push(rng.int(rank));
  const written = axes.map((a) => (rng.uniform() < 0.3 ? a - rank : a));
  return written.length === 1 && rng.uniform() < 0.5 ? written[0] : written;
}

function reducedLength(shape: readonly number[], axes: number[] | number | undefined): number {
  const list = axes === undefined ? shape.map((_, i) => i) : typeof axes === 'number' ? [axes] : axes;
  return numel([...new Set(list.map((a) => (a < 0 ? a + shape.length : a)))].map((a) => shape[a]));
}

describe('reduce: exact small cases', () => {
  // x = [[1, 2, 3],
  //      [4, 5, 6]]
  const x = [1, 2, 3, 4, 5, 6];

  it('sums over all axes, each axis, and a negative axis, with and without keepDims', async () => {
    const outs = scope(() => {
      const t = tensor(x, [2, 3]);
      return [sum(t), sum(t, 0), sum(t, 1), sum(t, -1, true), sum(t, [0, 1], true), sum(t, [])];
    });
    expect(outs.map((t) => t.shape)).toEqual([[], [3], [2], [2, 1], [1, 1], [2, 3]]);
    const [all, cols, rows, rowsKept, allKept, none] = await readAll(outs);
    assertEqual(all, [21]);
    assertEqual(cols, [5, 7, 9]); // 1+4, 2+5, 3+6
    assertEqual(rows, [6, 15]); // 1+2+3, 4+5+6
    assertEqual(rowsKept, [6, 15]);
    assertEqual(allKept, [21]);
    assertEqual(none, x);
    for (const t of outs) t.dispose();
  });

  it('means and maxima, including all-negative values and non-adjacent axes', async () => {
    const outs = scope(() => {
      const t = tensor(x, [2, 3]);
      const negative = tensor([-5, -3, -4, -8], [4]);
      // c[i, j, k] = 4i + 2j + k + 1 over [2, 2, 2]: reducing axes 0 and 2 leaves j.
      const cube = tensor([1, 2, 3, 4, 5, 6, 7, 8], [2, 2, 2]);
      return [mean(t, 1), mean(t, 0), max(t, 0), max(t, 1), max(negative), sum(cube, [0, 2]), max(cube, [0, 2], true)];
    });
    const [m1, m0, x0, x1, xn, s02, x02] = await readAll(outs);
    assertEqual(m1, [2, 5]);
    assertEqual(m0, [2.5, 3.5, 4.5]);
    assertEqual(x0, [4, 5, 6]);
    assertEqual(x1, [3, 6]);
    assertEqual(xn, [-3]);
    assertEqual(s02, [1 + 2 + 5 + 6, 3 + 4 + 7 + 8]);
    expect(outs[6].shape).toEqual([1, 2, 1]);
    assertEqual(x02, [6, 8]);
    for (const t of outs) t.dispose();
  });

  it('max shares the gradient equally among tied maxima: max([1, 3, 3, 2]) → [0, ½, ½, 0]', async () => {
    const [g] = await scopeAsync(async () => {
      const t = tensor([1, 3, 3, 2]);
      t.requiresGrad = true;
      max(t).backward();
      return readAll([t.grad!]);
    });
    assertEqual(g, [0, 0.5, 0.5, 0]);
  });

  it('sum and mean backward broadcast the gradient back: d mean(x, 1) = 1/3 per element', async () => {
    const [gs, gm] = await scopeAsync(async () => {
      const a = tensor(x, [2, 3]);
      const b = tensor(x, [2, 3]);
      a.requiresGrad = b.requiresGrad = true;
      sum(sum(a, 0)).backward();
      sum(mean(b, 1)).backward();
      return readAll([a.grad!, b.grad!]);
    });
    assertEqual(gs, [1, 1, 1, 1, 1, 1]);
    assertClose(gm, new Array(6).fill(1 / 3), { rtol: 1e-7 });
  });

  it('sumTo undoes broadcasting and rejects shapes that did not broadcast', async () => {
    const [y] = await scopeAsync(async () => readAll([sumTo(tensor(x, [2, 3]), [1, 3])]));
    assertEqual(y, [5, 7, 9]);
    scope(() => {
      expect(() => sumTo(Tensor.empty([2, 3]), [2])).toThrow(/\[2, 3\].*\[2\]/);
      expect(() => sumTo(Tensor.empty([3]), [2, 3])).toThrow(/\[3\].*\[2, 3\]/);
    });
  });

  it('max outside any scope without gradients frees everything when its output is disposed', async () => {
    const x = Tensor.fromArray([1, 5, 2, 4, 3, 0], [2, 3]);
    await assertNoLeak('max under noGrad', async () => {
      const out = noGrad(() => max(x, 1));
      assertEqual(await readAll([out]).then(([v]) => v), [5, 4]);
      out.dispose();
    });
    x.dispose();
  });

  it('rejects an axis out of range', () => {
    scope(() => {
      expect(() => sum(Tensor.empty([2, 3]), 2)).toThrow(/axis 2 is out of range for a tensor of rank 2/);
      expect(() => max(Tensor.empty([2, 3]), -3)).toThrow(/axis -3/);
    });
  });
});

describe('reduce: random shapes and axes against the float64 reference', () => {
  it('sum, mean and max over random axis sets of rank 1–4 tensors with awkward sizes', async () => {
    await withSeed('reduce random', async (rng, seed) => {
      const cases = Array.from({ length: 36 }, (_, i) => {
        const shape = randomShape(rng, 1 + rng.int(4), 6000);
        return { op: (['sum', 'mean', 'max'] as const)[i % 3] as Op, shape, axes: randomAxes(rng, shape.length), keepDims: rng.uniform() < 0.5, x: randomArray(rng, numel(shape)) };
      });
      const outs = scope(() => cases.map((c) => ops[c.op](tensor(c.x, c.shape), c.axes, c.keepDims)));
      const values = await readAll(outs);
      cases.forEach((c, i) => {
        const expected = ref.reduce(c.op, c.x, c.shape, c.axes, c.keepDims);
        const label = `${c.op}([${c.shape}], axes ${JSON.stringify(c.axes)}, keepDims ${c.keepDims})`;
        expect(outs[i].shape, label).toEqual(expected.shape);
        const n = reducedLength(c.shape, c.axes);
        if (c.op === 'max') assertEqual(values[i], expected.data, { label, seed });
        else assertClose(values[i], expected.data, { ...tolerance(c.op === 'mean' ? 1 : n), label, seed, shape: expected.shape });
      });
      for (const t of outs) t.dispose();
    });
  });

  it('long axes with few outputs take the two-pass path: [20000], [3, 5000] over axis 1, [1100, 3] over axis 0', async () => {
    await withSeed('reduce long', async (rng, seed) => {
      const cases = [
        { shape: [20000], axes: undefined },
        { shape: [3, 5000], axes: 1 },
        { shape: [1100, 3], axes: 0 },
        { shape: [2, 700, 2], axes: [0, 1] },
      ].map((c) => ({ ...c, x: randomArray(rng, numel(c.shape)) }));
      const outs = scope(() => cases.flatMap((c) => [sum(tensor(c.x, c.shape), c.axes), max(tensor(c.x, c.shape), c.axes), mean(tensor(c.x, c.shape), c.axes)]));
      const values = await readAll(outs);
      cases.forEach((c, i) => {
        const label = (op: string) => `${op}([${c.shape}], ${JSON.stringify(c.axes)})`;
        const n = reducedLength(c.shape, c.axes);
        assertClose(values[3 * i], ref.sum(c.x, c.shape, c.axes).data, { ...tolerance(n), label: label('sum'), seed });
        assertEqual(values[3 * i + 1], ref.max(c.x, c.shape, c.axes).data, { label: label('max'), seed });
        assertClose(values[3 * i + 2], ref.mean(c.x, c.shape, c.axes).data, { ...tolerance(1), label: label('mean'), seed });
      });
      for (const t of outs) t.dispose();
    });
  });
});

describe('reduce: backward against finite differences', () => {
  for (const op of ['sum', 'mean', 'max'] as const) {
    it(`${op}: gradient for several shapes and axis sets`, async () => {
      await withSeed(`reduce grad ${op}`, async (rng, seed) => {
        const cases: { shape: number[]; axes: number[] | number | undefined; keepDims: boolean }[] = [
          { shape: [17], axes: undefined, keepDims: false },
          { shape: [3, 33], axes: 1, keepDims: true },
          { shape: [5, 3, 17], axes: [0, 2], keepDims: false },
          { shape: [2, 3, 5, 2], axes: [-1, 1], keepDims: true },
          ...Array.from({ length: 2 }, () => {
            const shape = randomShape(rng, 1 + rng.int(3), 600);
            return { shape, axes: randomAxes(rng, shape.length), keepDims: rng.uniform() < 0.5 };
          }),
        ];
        for (const c of cases) {
          const x = randomArray(rng, numel(c.shape));
          await gradcheck(
            {
              label: `${op}([${c.shape}], ${JSON.stringify(c.axes)}, keepDims ${c.keepDims})`,
              inputs: [{ data: x, shape: c.shape }],
              op: (t) => ops[op](t, c.axes, c.keepDims),
              reference: (t) => ref.reduce(op, t, c.shape, c.axes, c.keepDims).data,
              outputShape: ref.reduce(op, x, c.shape, c.axes, c.keepDims).shape,
              // Only sum's forward adds up terms of magnitude ~1; mean's result and gradient (1/n each) would drown in that tolerance.
              reductionLength: op === 'sum' ? reducedLength(c.shape, c.axes) : 1,
              seed,
            },
            rng,
          );
        }
      });
    });
  }
});
