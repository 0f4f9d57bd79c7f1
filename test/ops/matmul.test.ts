// Matrix product (src/ops/matmul.ts) against test/reference/matmul.ts: exact small cases, exact
// integer products over awkward shapes in every transpose combination, float tolerances, gradients.
// Every case runs on both kernels: shaders/matmul_subgroup.wgsl (where the device has fixed-size
// subgroups) and the portable shaders/matmul.wgsl.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  matmul,
  matmulKernel,
  matmulNaive,
  matmulUsesSubgroups,
  setMatmulKernelPath,
  type MatmulKernelPath,
} from '../../src/ops/matmul.js';
import { gpu } from '../../src/gpu/encoder.js';
import { Tensor, scope, scopeAsync } from '../../src/tensor/tensor.js';
import { tensor } from '../../src/tensor/create.js';
import * as ref from '../reference/matmul.js';
import { assertClose, assertEqual, readAll } from '../support/allclose.js';
import { gradcheck, tolerance } from '../support/gradcheck.js';
import { AWKWARD_SIZES, pick, randomArray, randomInts, withSeed } from '../support/random.js';

const paths: MatmulKernelPath[] = ['auto', 'portable'];
const pathName = (path: MatmulKernelPath): string => (path === 'auto' ? 'subgroup kernel where available' : 'portable kernel');

afterEach(() => {
  setMatmulKernelPath('auto');
});

const transposes = [
  [false, false],
  [true, false],
  [false, true],
  [true, true],
] as const;

/** Stored shapes of A and B for C[m, n] = op(A)·op(B) with inner size k. */
function storedShapes(m: number, k: number, n: number, ta: boolean, tb: boolean): [number[], number[]] {
  return [ta ? [k, m] : [m, k], tb ? [n, k] : [k, n]];
}

describe.each(paths)('matmul with %s', (path) => {
  beforeEach(() => {
    setMatmulKernelPath(path);
  });

  it(`uses the kernel it says (${pathName(path)})`, () => {
    expect(matmulUsesSubgroups()).toBe(path === 'auto' && gpu().subgroupSize > 0);
  });

  describe('exact small cases', () => {
    it('[2,3]·[3,2] of small integers, and the same product through each transpose flag', async () => {
      // A = [[1, 2, 3], [4, 5, 6]], B = [[1, 0], [0, 1], [1, 1]]: C = [[1+3, 2+3], [4+6, 5+6]] = [[4, 5], [10, 11]]
      const a = [1, 2, 3, 4, 5, 6];
      const b = [1, 0, 0, 1, 1, 1];
      const aT = [1, 4, 2, 5, 3, 6];
      const bT = [1, 0, 1, 0, 1, 1];
      const outs = scope(() => [
        matmul(tensor(a, [2, 3]), tensor(b, [3, 2])),
        matmul(tensor(aT, [3, 2]), tensor(b, [3, 2]), { transposeA: true }),
        matmul(tensor(a, [2, 3]), tensor(bT, [2, 3]), { transposeB: true }),
        matmul(tensor(aT, [3, 2]), tensor(bT, [2, 3]), { transposeA: true, transposeB: true }),
      ]);
      for (const [i, c] of (await readAll(outs)).entries()) assertEqual(c, [4, 5, 10, 11], { label: `transpose case ${i}` });
      expect(outs.map((t) => t.shape)).toEqual([[2, 2], [2, 2], [2, 2], [2, 2]]);
      for (const t of outs) t.dispose();
    });

    it('a 1×1 product, an outer product [3,1]·[1,2], and an empty inner size giving zeros', async () => {
      const outs = scope(() => [
        matmul(tensor([3], [1, 1]), tensor([-2], [1, 1])),
        matmul(tensor([1, 2, 3], [3, 1]), tensor([10, 100], [1, 2])),
        matmul(Tensor.fromArray([], [2, 0]), Tensor.fromArray([], [0, 3])),
      ]);
      const [one, outer, empty] = await readAll(outs);
      assertEqual(one, [-6]);
      assertEqual(outer, [10, 100, 20, 200, 30, 300]);
      assertEqual(empty, [0, 0, 0, 0, 0, 0]);
      for (const t of outs) t.dispose();
    });

    it('backward of sum(A·B): dA = row sums of B broadcast, dB = column sums of A broadcast', async () => {
      const [da, db] = await scopeAsync(async () => {
        const a = tensor([1, 2, 3, 4, 5, 6], [2, 3]);
        const b = tensor([1, 0, 0, 1, 1, 1], [3, 2]);
        a.requiresGrad = b.requiresGrad = true;
        const c = matmul(a, b);
        // sum over C of A·B: dA[i, p] = Σ_j B[p, j], dB[p, j] = Σ_i A[i, p]
        c.backward(Tensor.fromArray([1, 1, 1, 1], [2, 2]));
        return readAll([a.grad!, b.grad!]);
      });
      assertEqual(da, [1, 1, 2, 1, 1, 2]);
      assertEqual(db, [5, 5, 7, 7, 9, 9]);
    });

    it('rejects mismatched inner sizes and non-2-D inputs, naming both shapes', () => {
      scope(() => {
        expect(() => matmul(Tensor.empty([2, 3]), Tensor.empty([4, 5]))).toThrow(/\[2, 3\] f32 · \[4, 5\] f32 \(3 vs 4\)/);
        expect(() => matmul(Tensor.empty([2, 3]), Tensor.empty([3, 5]), { transposeA: true })).toThrow(/\[2, 3\] f32ᵀ · \[3, 5\] f32 \(2 vs 3\)/);
        expect(() => matmul(Tensor.empty([2, 3, 4]), Tensor.empty([4, 5]))).toThrow(/2-D.*\[2, 3, 4\]/);
      });
    });
  });

  describe('random shapes against the float64 reference', () => {
    it('integer matrices give exact products for awkward m, k, n in all four transpose combinations', async () => {
      await withSeed(`matmul exact ${path}`, async (rng, seed) => {
        const sizes = [...AWKWARD_SIZES, 65, 100];
        const cases = Array.from({ length: 32 }, (_, i) => {
          const [ta, tb] = transposes[i % 4];
          const [m, k, n] = [pick(rng, sizes), pick(rng, sizes), pick(rng, sizes)];
          const [as, bs] = storedShapes(m, k, n, ta, tb);
          return { m, k, n, ta, tb, as, bs, a: randomInts(rng, m * k), b: randomInts(rng, k * n) };
        });
        const outs = scope(() =>
          cases.flatMap((c) => {
            const [a, b] = [tensor(c.a, c.as), tensor(c.b, c.bs)];
            return [matmul(a, b, { transposeA: c.ta, transposeB: c.tb }), matmulNaive(a, b, c.ta, c.tb)];
          }),
        );
        const values = await readAll(outs);
        cases.forEach((c, i) => {
          const label = `[${c.m}×${c.k}]·[${c.k}×${c.n}] ta=${c.ta} tb=${c.tb}`;
          const expected = ref.matmul(c.a, c.b, c.m, c.k, c.n, c.ta, c.tb);
          expect(outs[2 * i].shape, label).toEqual([c.m, c.n]);
          assertEqual(values[2 * i], expected, { label, seed, shape: [c.m, c.n] });
          assertEqual(values[2 * i + 1], expected, { label: `naive ${label}`, seed, shape: [c.m, c.n] });
        });
        for (const t of outs) t.dispose();
      });
    });

    it('integer sweep: m, k, n over 1, 3, 4, 17, 129 (vector and scalar loads, ragged edges) in all four transpose combinations', async () => {
      await withSeed(`matmul sweep ${path}`, async (rng, seed) => {
        const sizes = [1, 3, 4, 17, 129];
        const cases: { m: number; k: number; n: number; ta: boolean; tb: boolean; as: number[]; bs: number[]; a: Float32Array; b: Float32Array }[] = [];
        for (const [ta, tb] of transposes) {
          for (const m of sizes) {
            for (const k of sizes) {
              for (const n of sizes) {
                if (m * k * n > 129 * 129 * 4) continue;
                const [as, bs] = storedShapes(m, k, n, ta, tb);
                cases.push({ m, k, n, ta, tb, as, bs, a: randomInts(rng, m * k), b: randomInts(rng, k * n) });
              }
            }
          }
        }
        const outs = scope(() => cases.map((c) => matmulKernel(tensor(c.a, c.as), tensor(c.b, c.bs), c.ta, c.tb)));
        const values = await readAll(outs);
        cases.forEach((c, i) => {
          const label = `[${c.m}×${c.k}]·[${c.k}×${c.n}] ta=${c.ta} tb=${c.tb}`;
          assertEqual(values[i], ref.matmul(c.a, c.b, c.m, c.k, c.n, c.ta, c.tb), { label, seed, shape: [c.m, c.n] });
        });
        for (const t of outs) t.dispose();
      });
    });

    it('the classifier [128,64]·[64,10]ᵀ and its gradients (dX = dY·W, dW = dYᵀ·X) are exact on integers', async () => {
      await withSeed(`matmul classifier ${path}`, async (rng, seed) => {
        const [batch, features, classes] = [128, 64, 10];
        const x = randomInts(rng, batch * features);
        const w = randomInts(rng, classes * features);
        const dy = randomInts(rng, batch * classes);
        const outs = scope(() => {
          const [xt, wt, dyt] = [tensor(x, [batch, features]), tensor(w, [classes, features]), tensor(dy, [batch, classes])];
          return [matmulKernel(xt, wt, false, true), matmulKernel(dyt, wt), matmulKernel(dyt, xt, true, false)];
        });
        const [y, dx, dw] = await readAll(outs);
        assertEqual(y, ref.matmul(x, w, batch, features, classes, false, true), { label: 'y = x·wᵀ', seed });
        assertEqual(dx, ref.matmul(dy, w, batch, classes, features), { label: 'dx = dy·w', seed });
        assertEqual(dw, ref.matmul(dy, x, classes, batch, features, true, false), { label: 'dw = dyᵀ·x', seed });
        for (const t of outs) t.dispose();
      });
    });

    it('float matrices agree within a tolerance scaled by k (the shapes of a conv-as-GEMM and a classifier)', async () => {
      await withSeed(`matmul float ${path}`, async (rng, seed) => {
        const shapes = [
          [1, 1, 1],
          [3, 300, 5],
          [129, 17, 33],
          [64, 10, 1],
          [2048, 144, 16],
          [128, 64, 10],
        ];
        const cases = shapes.map(([m, k, n], i) => {
          const [ta, tb] = transposes[i % 4];
          const [as, bs] = storedShapes(m, k, n, ta, tb);
          return { m, k, n, ta, tb, as, bs, a: randomArray(rng, m * k), b: randomArray(rng, k * n) };
        });
        const outs = scope(() => cases.map((c) => matmulKernel(tensor(c.a, c.as), tensor(c.b, c.bs), c.ta, c.tb)));
        const values = await readAll(outs);
        cases.forEach((c, i) => {
          const label = `[${c.m}×${c.k}]·[${c.k}×${c.n}] ta=${c.ta} tb=${c.tb}`;
          assertClose(values[i], ref.matmul(c.a, c.b, c.m, c.k, c.n, c.ta, c.tb), { ...tolerance(c.k), label, seed, shape: [c.m, c.n] });
        });
        for (const t of outs) t.dispose();
      });
    });
  });

  describe('backward against finite differences', () => {
    for (const [ta, tb] of transposes) {
      it(`gradients of both inputs with transposeA=${ta}, transposeB=${tb}`, async () => {
        await withSeed(`matmul grad ${ta} ${tb} ${path}`, async (rng, seed) => {
          for (const [m, k, n] of [[1, 1, 1], [3, 17, 5], [17, 33, 2], [33, 3, 31]]) {
            const [as, bs] = storedShapes(m, k, n, ta, tb);
            await gradcheck(
              {
                label: `matmul [${m}×${k}]·[${k}×${n}] ta=${ta} tb=${tb}`,
                inputs: [{ data: randomArray(rng, m * k), shape: as }, { data: randomArray(rng, k * n), shape: bs }],
                op: (a, b) => matmul(a, b, { transposeA: ta, transposeB: tb }),
                reference: (a, b) => ref.matmul(a, b, m, k, n, ta, tb),
                outputShape: [m, n],
                reductionLength: Math.max(m, k, n),
                seed,
              },
              rng,
            );
          }
        });
      });
    }

    it('only the input that requires grad gets one (a frozen weight)', async () => {
      await withSeed(`matmul grad frozen ${path}`, async (rng, seed) => {
        await gradcheck(
          {
            label: 'matmul with constant B',
            inputs: [{ data: randomArray(rng, 3 * 17), shape: [3, 17] }, { data: randomArray(rng, 17 * 5), shape: [17, 5], requiresGrad: false }],
            op: (a, b) => matmul(a, b),
            reference: (a, b) => ref.matmul(a, b, 3, 17, 5),
            outputShape: [3, 5],
            reductionLength: 17,
            seed,
          },
          rng,
        );
      });
    });
  });
});
