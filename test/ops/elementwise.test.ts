// Elementwise ops (src/ops/elementwise.ts) against test/reference/elementwise.ts: exact small cases,
// random shapes with broadcasting, and every backward against finite differences.
import { describe, expect, it } from 'vitest';
import { accumulate_, add, addRelu, addScalar, broadcastTo, div, equal, exp, fill, log, mul, neg, relu, scale, sub } from '../../src/ops/elementwise.js';
import { sum } from '../../src/ops/reduce.js';
import { Tensor, scope, scopeAsync } from '../../src/tensor/tensor.js';
import { tensor } from '../../src/tensor/create.js';
import type { Shape } from '../../src/tensor/shape.js';
import type { Rng } from '../../src/tensor/random.js';
import * as ref from '../reference/elementwise.js';
import { assertClose, assertEqual, readAll, toF32 } from '../support/allclose.js';
import { gradcheck } from '../support/gradcheck.js';
import { pick, randomArray, randomAwayFromZero, randomShape, withSeed } from '../support/random.js';

const binaryOps = { add, sub, mul, div } as const;

/** Two shapes that broadcast together: a random shape, with some axes set to 1 and leading axes dropped in each. */
function broadcastPair(rng: Rng): [number[], number[]] {
  const rank = 1 + rng.int(4);
  const full = randomShape(rng, rank, 3000);
  const derive = () => {
    const s = full.map((d) => (rng.uniform() < 0.35 ? 1 : d));
    return s.slice(rng.int(rank));
  };
  return [derive(), derive()];
}

describe('elementwise: exact small cases', () => {
  it('adds, subtracts, multiplies and divides small integers exactly, broadcasting a row', async () => {
    const y = scope(() => {
      const a = tensor([1, 2, 3, 4, 5, 6], [2, 3]);
      const b = tensor([10, 20, 30]);
      const d = tensor([2, 4, 8]);
      return [add(a, b), sub(a, b), mul(a, b), div(a, d)];
    });
    const [s, diff, p, q] = await readAll(y);
    assertEqual(s, [11, 22, 33, 14, 25, 36], { label: 'add' });
    assertEqual(diff, [-9, -18, -27, -6, -15, -24], { label: 'sub' });
    assertEqual(p, [10, 40, 90, 40, 100, 180], { label: 'mul' });
    assertEqual(q, [0.5, 0.5, 0.375, 2, 1.25, 0.75], { label: 'div' });
    for (const t of y) t.dispose();
  });

  it('broadcasts a column against a row into an outer sum: [2,1] + [1,3] = [2,3]', async () => {
    const y = scope(() => add(tensor([10, 20], [2, 1]), tensor([1, 2, 3], [1, 3])));
    expect(y.shape).toEqual([2, 3]);
    assertEqual(await y.toArray(), [11, 12, 13, 21, 22, 23]);
    y.dispose();
  });

  it('broadcasts a scalar (rank 0) and a middle axis: [2,1,2] · [3,1] = [2,3,2]', async () => {
    const [s, m] = scope(() => {
      const x = tensor([1, 2, 3, 4], [2, 1, 2]);
      return [mul(x, tensor([3], [])), mul(x, tensor([1, 2, 3], [3, 1]))];
    });
    expect(m.shape).toEqual([2, 3, 2]);
    const [sv, mv] = await readAll([s, m]);
    assertEqual(sv, [3, 6, 9, 12]);
    // x[i, 0, k] · c[j]: rows (1,2)·1, (1,2)·2, (1,2)·3, then (3,4)·1, ...
    assertEqual(mv, [1, 2, 2, 4, 3, 6, 3, 4, 6, 8, 9, 12]);
    s.dispose();
    m.dispose();
  });

  it('computes relu, neg, scale, addScalar exactly, and exp(0) = 1, log(1) = 0', async () => {
    const y = scope(() => {
      const x = tensor([-2, -0.5, 0, 0.5, 3]);
      return [relu(x), neg(x), scale(x, 0.25), addScalar(x, 1.5), exp(tensor([0, 0])), log(tensor([1, 1]))];
    });
    const [r, n, s, a, e, l] = await readAll(y);
    assertEqual(r, [0, 0, 0, 0.5, 3], { label: 'relu' });
    assertEqual(n, [2, 0.5, -0, -0.5, -3], { label: 'neg' });
    assertEqual(s, [-0.5, -0.125, 0, 0.125, 0.75], { label: 'scale' });
    assertEqual(a, [-0.5, 1, 1.5, 2, 4.5], { label: 'addScalar' });
    assertEqual(e, [1, 1], { label: 'exp' });
    assertEqual(l, [0, 0], { label: 'log' });
    for (const t of y) t.dispose();
  });

  it('addRelu is relu(a + b) and broadcastTo copies along stretched axes', async () => {
    const y = scope(() => [addRelu(tensor([1, -2, 3, -4]), tensor([-2, 1, 1, 5])), broadcastTo(tensor([1, 2], [2, 1]), [2, 3])]);
    const [ar, bt] = await readAll(y);
    assertEqual(ar, [0, 0, 4, 1]);
    assertEqual(bt, [1, 1, 1, 2, 2, 2]);
    for (const t of y) t.dispose();
  });

  it('backward of sum(a · b) with b broadcast: da = b per row, db = column sums of a', async () => {
    const [da, db] = await scopeAsync(async () => {
      const a = tensor([1, 2, 3, 4, 5, 6], [2, 3]);
      const b = tensor([10, 20, 30]);
      a.requiresGrad = b.requiresGrad = true;
      sum(mul(a, b)).backward();
      return readAll([a.grad!, b.grad!]);
    });
    assertEqual(da, [10, 20, 30, 10, 20, 30]);
    assertEqual(db, [5, 7, 9]);
  });

  it('rejects shapes that do not broadcast, naming both shapes', () => {
    scope(() => {
      expect(() => add(Tensor.empty([2, 3]), Tensor.empty([4, 3]))).toThrow(/\[2, 3\] and \[4, 3\]/);
      expect(() => broadcastTo(Tensor.empty([3]), [4])).toThrow(/\[3\].*\[4\]/);
      expect(() => addRelu(Tensor.empty([2]), Tensor.empty([3]))).toThrow(/\[2\].*\[3\]/);
    });
  });
});

describe('elementwise: four elements per invocation where the count allows', () => {
  it('same-shape add, relu, accumulate and fill are exact on counts with and without a remainder mod 4', async () => {
    await withSeed('elementwise vec4', async (rng, seed) => {
      for (const n of [1, 3, 4, 8, 17, 1024, 1027, 4100]) {
        const a = randomArray(rng, n, -4, 4);
        const b = randomArray(rng, n, -4, 4);
        const outs = scope(() => {
          const acc = tensor(a);
          accumulate_(acc, tensor(b));
          return [add(tensor(a), tensor(b)), relu(tensor(a)), acc, fill([n], 2.5)];
        });
        const [s, r, acc, f] = await readAll(outs);
        const expectedSum = toF32(a.map((v, i) => v + b[i]));
        assertEqual(s, expectedSum, { label: `add of ${n}`, seed });
        assertEqual(r, a.map((v) => Math.max(v, 0)), { label: `relu of ${n}`, seed });
        assertEqual(acc, expectedSum, { label: `accumulate of ${n}`, seed });
        assertEqual(f, new Float32Array(n).fill(2.5), { label: `fill of ${n}`, seed });
        for (const t of outs) t.dispose();
      }
    });
  });
});

describe('elementwise: a tensor repeated along leading axes (the tiled vec4 kernel)', () => {
  it('a + b and a · b where b is a bias map [C, H, W] or [1, H, W] repeated over the batch equal the reference', async () => {
    await withSeed('elementwise tiled', async (rng, seed) => {
      const cases: [Shape, Shape][] = [[[3, 4, 5, 4], [4, 5, 4]], [[2, 3, 8], [1, 3, 8]], [[5, 12], [12]], [[2, 4, 2, 2], [4, 1, 2]]];
      for (const [as, bs] of cases) {
        const a = randomArray(rng, ref.numel(as), -4, 4);
        const b = randomArray(rng, ref.numel(bs), -4, 4);
        const outs = scope(() => [add(tensor(a, as), tensor(b, bs)), mul(tensor(a, as), tensor(b, bs))]);
        const [s, m] = await readAll(outs);
        assertEqual(s, toF32(ref.binary('add', a, as, b, bs).data), { label: `add [${as}] + [${bs}]`, seed });
        assertEqual(m, toF32(ref.binary('mul', a, as, b, bs).data), { label: `mul [${as}] · [${bs}]`, seed });
        for (const t of outs) t.dispose();
      }
    });
  });
});

describe('elementwise: random shapes against the float64 reference', () => {
  it('add, sub and mul are correctly rounded for same shapes and broadcasts (equality with fround(reference))', async () => {
    await withSeed('elementwise exact binary', async (rng, seed) => {
      const cases: { op: 'add' | 'sub' | 'mul'; a: Float32Array; b: Float32Array; as: Shape; bs: Shape }[] = [];
      for (let i = 0; i < 24; i++) {
        const [as, bs] = i < 6 ? (() => { const s = randomShape(rng, 1 + rng.int(3), 3000); return [s, s]; })() : broadcastPair(rng);
        const op = pick(rng, ['add', 'sub', 'mul'] as const);
        cases.push({ op, as, bs, a: randomArray(rng, ref.numel(as), -4, 4), b: randomArray(rng, ref.numel(bs), -4, 4) });
      }
      const outs = scope(() => cases.map((c) => binaryOps[c.op](tensor(c.a, c.as), tensor(c.b, c.bs))));
      const values = await readAll(outs);
      cases.forEach((c, i) => {
        const expected = ref.binary(c.op, c.a, c.as, c.b, c.bs);
        expect(outs[i].shape, `${c.op} [${c.as}] [${c.bs}]`).toEqual(expected.shape);
        assertEqual(values[i], toF32(expected.data), { label: `${c.op} [${c.as}] with [${c.bs}]`, seed, shape: expected.shape });
      });
      for (const t of outs) t.dispose();
    });
  });

  it('equal gives 1 exactly where the values match, with broadcasting (values drawn from a few integers, so ties are common)', async () => {
    await withSeed('elementwise equal', async (rng, seed) => {
      const cases = Array.from({ length: 8 }, (_, i) => {
        const [as, bs] = i < 2 ? (() => { const s = randomShape(rng, 2, 3000); return [s, s]; })() : broadcastPair(rng);
        const draw = (shape: Shape) => Float32Array.from({ length: ref.numel(shape) }, () => rng.int(3) - 1);
        return { as, bs, a: draw(as), b: draw(bs) };
      });
      const outs = scope(() => cases.map((c) => equal(tensor(c.a, c.as), tensor(c.b, c.bs))));
      const values = await readAll(outs);
      const seen = new Set<number>();
      cases.forEach((c, i) => {
        const expected = ref.binary('equal', c.a, c.as, c.b, c.bs);
        expect(outs[i].shape).toEqual(expected.shape);
        expected.data.forEach((v) => seen.add(v));
        assertEqual(values[i], toF32(expected.data), { label: `equal [${c.as}] with [${c.bs}]`, seed, shape: expected.shape });
      });
      expect([...seen].sort()).toEqual([0, 1]); // both outcomes were checked
      for (const t of outs) t.dispose();
    });
  });

  it('div is within a few ulps of the reference, with broadcasting', async () => {
    await withSeed('elementwise div', async (rng, seed) => {
      const cases = Array.from({ length: 10 }, () => {
        const [as, bs] = broadcastPair(rng);
        return { as, bs, a: randomArray(rng, ref.numel(as), -4, 4), b: randomAwayFromZero(rng, ref.numel(bs), 0.25, 4) };
      });
      const outs = scope(() => cases.map((c) => div(tensor(c.a, c.as), tensor(c.b, c.bs))));
      const values = await readAll(outs);
      cases.forEach((c, i) => {
        const expected = ref.binary('div', c.a, c.as, c.b, c.bs);
        assertClose(values[i], expected.data, { rtol: 4e-7, atol: 1e-30, label: `div [${c.as}] by [${c.bs}]`, seed });
      });
      for (const t of outs) t.dispose();
    });
  });

  it('unary ops match the reference on awkward sizes (relu/neg/scale/addScalar exactly, exp/log to a few ulps)', async () => {
    await withSeed('elementwise unary', async (rng, seed) => {
      const sizes = [1, 3, 17, 129, 1000, 4097];
      const inputs = sizes.map((n) => ({ n, x: randomArray(rng, n, -3, 3), p: randomArray(rng, n, 0.01, 100) }));
      const alpha = 0.3;
      const outs = scope(() =>
        inputs.flatMap(({ x, p }) => {
          const t = tensor(x);
          return [relu(t), neg(t), scale(t, alpha), addScalar(t, alpha), exp(t), log(tensor(p))];
        }),
      );
      const values = await readAll(outs);
      inputs.forEach(({ n, x, p }, i) => {
        const [r, ng, s, a, e, l] = values.slice(6 * i, 6 * i + 6);
        const label = (op: string) => `${op} of ${n} values`;
        assertEqual(r, toF32(ref.unary('relu', x)), { label: label('relu'), seed });
        assertEqual(ng, toF32(ref.unary('neg', x)), { label: label('neg'), seed });
        assertEqual(s, toF32(ref.unary('scale', x, Math.fround(alpha))), { label: label('scale'), seed });
        assertEqual(a, toF32(ref.unary('addScalar', x, Math.fround(alpha))), { label: label('addScalar'), seed });
        assertClose(e, ref.unary('exp', x), { rtol: 2e-6, label: label('exp'), seed });
        assertClose(l, ref.unary('log', p), { atol: 1e-6, rtol: 1e-6, label: label('log'), seed });
      });
      for (const t of outs) t.dispose();
    });
  });
});

describe('elementwise: backward against finite differences', () => {
  for (const op of ['add', 'sub', 'mul', 'div'] as const) {
    it(`${op}: gradients of both inputs, same shapes and broadcasts`, async () => {
      await withSeed(`elementwise grad ${op}`, async (rng, seed) => {
        const pairs: [number[], number[]][] = [[[17], [17]], [[3, 33], [33]], [[5, 1, 3], [1, 17, 1]], [[1], [2, 3]], ...Array.from({ length: 3 }, () => broadcastPair(rng))];
        for (const [as, bs] of pairs) {
          const out = ref.broadcastShape(as, bs);
          const stretch = ref.numel(out) / Math.min(ref.numel(as), ref.numel(bs));
          const b = op === 'div' ? randomAwayFromZero(rng, ref.numel(bs), 0.5, 2) : randomArray(rng, ref.numel(bs));
          const a = randomArray(rng, ref.numel(as));
          await gradcheck(
            {
              label: `${op} [${as}] [${bs}]`,
              inputs: [{ data: a, shape: as }, { data: b, shape: bs }],
              op: binaryOps[op],
              reference: (x, z) => ref.binary(op, x, as, z, bs).data,
              outputShape: ref.binary(op, a, as, b, bs).shape,
              reductionLength: stretch,
              seed,
            },
            rng,
          );
        }
      });
    });
  }

  it('a broadcast input that does not require grad gets none, and the other input still gets its gradient', async () => {
    await withSeed('elementwise grad partial', async (rng, seed) => {
      const [as, bs] = [[3, 17], [17]];
      const [a, b] = [randomArray(rng, 51), randomArray(rng, 17)];
      await gradcheck(
        {
          label: 'mul with a constant row',
          inputs: [{ data: a, shape: as }, { data: b, shape: bs, requiresGrad: false }],
          op: mul,
          reference: (x, z) => ref.binary('mul', x, as, z, bs).data,
          outputShape: ref.binary('mul', a, as, b, bs).shape,
          reductionLength: 3,
          seed,
        },
        rng,
      );
    });
  });

  const unaryCases = [
    { name: 'relu', op: (x: Tensor) => relu(x), reference: (x: Float64Array) => ref.unary('relu', x), values: (rng: Rng, n: number) => randomAwayFromZero(rng, n, 0.01, 1) },
    { name: 'neg', op: (x: Tensor) => neg(x), reference: (x: Float64Array) => ref.unary('neg', x), values: randomArray },
    { name: 'scale', op: (x: Tensor) => scale(x, -2.5), reference: (x: Float64Array) => ref.unary('scale', x, -2.5), values: randomArray },
    { name: 'addScalar', op: (x: Tensor) => addScalar(x, 0.75), reference: (x: Float64Array) => ref.unary('addScalar', x, 0.75), values: randomArray },
    { name: 'exp', op: (x: Tensor) => exp(x), reference: (x: Float64Array) => ref.unary('exp', x), values: (rng: Rng, n: number) => randomArray(rng, n, -2, 2) },
    { name: 'log', op: (x: Tensor) => log(x), reference: (x: Float64Array) => ref.unary('log', x), values: (rng: Rng, n: number) => randomArray(rng, n, 0.5, 3) },
  ];
  for (const u of unaryCases) {
    it(`${u.name}: gradient on awkward sizes`, async () => {
      await withSeed(`elementwise grad ${u.name}`, async (rng, seed) => {
        for (const shape of [[1], [17], [3, 129]]) {
          const n = ref.numel(shape);
          await gradcheck(
            { label: `${u.name} [${shape}]`, inputs: [{ data: u.values(rng, n), shape }], op: u.op, reference: u.reference, outputShape: shape, slack: 4, seed },
            rng,
          );
        }
      });
    });
  }

  it('addRelu and broadcastTo: gradients', async () => {
    await withSeed('elementwise grad addRelu broadcastTo', async (rng, seed) => {
      const shape = [3, 33];
      const n = ref.numel(shape);
      const [left, right] = [randomAwayFromZero(rng, n, 0.05, 1), randomAwayFromZero(rng, n, 0.05, 1)];
      await gradcheck(
        {
          label: 'addRelu [3,33]',
          inputs: [{ data: left, shape }, { data: right, shape }],
          op: addRelu,
          reference: (a, b) => ref.unary('relu', ref.binary('add', a, shape, b, shape).data),
          outputShape: ref.binary('add', left, shape, right, shape).shape,
          seed,
        },
        rng,
      );
      await gradcheck(
        {
          label: 'broadcastTo [17,1] → [2,17,5]',
          inputs: [{ data: randomArray(rng, 17), shape: [17, 1] }],
          op: (x) => broadcastTo(x, [2, 17, 5]),
          reference: (x) => ref.binary('add', x, [17, 1], new Float64Array(170), [2, 17, 5]).data,
          outputShape: ref.broadcastShape([17, 1], [2, 17, 5]),
          reductionLength: 10,
          seed,
        },
        rng,
      );
    });
  });

  it('the test would catch a wrong gradient (gradcheck fails on a mismatched reference)', async () => {
    await withSeed('elementwise gradcheck self-test', async (rng) => {
      const wrong = gradcheck(
        {
          label: 'exp checked against 1.001·exp',
          inputs: [{ data: randomArray(rng, 17), shape: [17] }],
          op: (x) => exp(x),
          reference: (x) => ref.unary('exp', x).map((v) => v * 1.001),
          outputShape: [17],
        },
        rng,
      );
      await expect(wrong).rejects.toThrow(/exp checked against 1.001·exp forward: \d+ of 17 elements differ/);
    });
  });
});

