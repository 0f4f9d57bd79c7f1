// batchNorm2d (src/ops/batchnorm.ts) against test/reference/batchnorm.ts: a case worked by hand, training
// and evaluation forwards with the running-statistics update (momentum 0.1, unbiased variance, eps 1e-5, as
// PyTorch), the fused ReLU, a channel with a large mean and a small spread, the split reduction over several
// chunks, and every backward against finite differences of the float64 reference.
import { describe, expect, it } from 'vitest';
import { batchNorm2d, reductionChunks, type BatchNormOptions } from '../../src/ops/batchnorm.js';
import { Tensor, scope, scopeAsync } from '../../src/tensor/tensor.js';
import { tensor } from '../../src/tensor/create.js';
import type { Shape } from '../../src/tensor/shape.js';
import type { Rng } from '../../src/tensor/random.js';
import * as ref from '../reference/batchnorm.js';
import { numel } from '../reference/elementwise.js';
import { assertClose, readAll } from '../support/allclose.js';
import { finiteDifferences, gradcheck, tolerance } from '../support/gradcheck.js';
import { randomArray, randomAwayFromZero, withSeed } from '../support/random.js';

interface BnCase {
  shape: Shape;
  x: Float32Array;
  gamma: Float32Array;
  beta: Float32Array;
  runningMean: Float32Array;
  runningVar: Float32Array;
}

/** x with a different mean and spread in every channel; γ away from 0 (either sign); running stats not at their defaults. */
function bnCase(rng: Rng, shape: Shape): BnCase {
  const { channels, hw } = ref.bnLayout(shape);
  const offset = randomArray(rng, channels, -3, 3);
  const spread = randomArray(rng, channels, 0.5, 2);
  const x = new Float32Array(numel(shape));
  for (let i = 0; i < x.length; i++) {
    const c = Math.floor(i / hw) % channels;
    x[i] = offset[c] + spread[c] * (2 * rng.uniform() - 1);
  }
  return {
    shape,
    x,
    gamma: randomAwayFromZero(rng, channels, 0.5, 1.5),
    beta: randomArray(rng, channels, -0.5, 0.5),
    runningMean: randomArray(rng, channels, -1, 1),
    runningVar: randomArray(rng, channels, 0.5, 2),
  };
}

/**
 * Redraws until every ReLU pre-activation is at least 1e-4 from the kink, so that neither float32 rounding
 * (~1e-6 here) nor a finite-difference step (h = 1e-6 moves x̂ by ~1e-5 at most) crosses it.
 */
function bnCaseAwayFromKink(rng: Rng, shape: Shape, training: boolean): BnCase {
  for (let attempt = 0; attempt < 1000; attempt++) {
    const c = bnCase(rng, shape);
    const pre = ref.batchNorm2d(c.x, shape, c.gamma, c.beta, c.runningMean, c.runningVar, { training });
    if (pre.y.every((v) => Math.abs(v) > 1e-4)) return c;
  }
  throw new Error(`no input for [${shape.join(', ')}] kept every pre-activation away from the ReLU kink`);
}

const SHAPES: Shape[] = [
  [2, 3, 5, 7], // odd spatial sizes
  [4, 12, 3, 3],
  [1, 23, 5, 3], // a batch of one: the statistics come from the positions alone
  [3, 45, 2, 3], // 45 channels: not a multiple of the 64-wide workgroup
  [6, 12], // 2-D input [N, C], as BatchNorm1d
  [3, 5, 4, 8], // planes of a multiple of 4 values: the vec4 kernels
  [2, 7, 2, 2],
];

describe('batchNorm2d: a case worked by hand', () => {
  it('normalises by the biased variance and moves running_var towards the unbiased one (momentum 0.1)', async () => {
    // Channel 0 holds -2, -2 (sample 0) and 2, 2 (sample 1): mean 0, biased variance 4, unbiased 16/3.
    // With eps 0, x̂ = ±1 and y = γ·x̂ + β = 3·(±1) + 1 = -2 or 4; ReLU turns -2 into 0.
    // Channel 1 holds 1, 3 and 5, 7: mean 4, biased variance 5, unbiased 20/3.
    // running_mean = 0.9·0 + 0.1·mean; running_var = 0.9·1 + 0.1·unbiased.
    // sqrt and division are not correctly rounded in WGSL, hence a relative tolerance of a few ulps.
    const outs = scope(() => {
      const x = tensor([-2, -2, 1, 3, 2, 2, 5, 7], [2, 2, 1, 2]);
      const rm = tensor([0, 0]);
      const rv = tensor([1, 1]);
      const options = { training: true, eps: 0 };
      const y = batchNorm2d(x, tensor([3, 1]), tensor([1, 0]), rm, rv, options);
      const yRelu = batchNorm2d(x, tensor([3, 1]), tensor([1, 0]), tensor([0, 0]), tensor([1, 1]), { ...options, relu: true });
      return [y, yRelu, rm, rv];
    });
    const [y, yRelu, rm, rv] = await readAll(outs);
    const s5 = Math.sqrt(5);
    assertClose(y, [-2, -2, -3 / s5, -1 / s5, 4, 4, 1 / s5, 3 / s5], { rtol: 1e-6, label: 'y' });
    assertClose(yRelu, [0, 0, 0, 0, 4, 4, 1 / s5, 3 / s5], { rtol: 1e-6, label: 'relu(y)' });
    assertClose(rm, [0, 0.4], { rtol: 1e-6, label: 'running_mean' });
    assertClose(rv, [0.9 + 0.1 * (16 / 3), 0.9 + 0.1 * (20 / 3)], { rtol: 1e-6, label: 'running_var' });
    for (const t of outs) t.dispose();
  });

  it('evaluation normalises by the running statistics and leaves them unchanged', async () => {
    // (x − 1) / sqrt(4 + 0) · 2 + 0.5 for x = 1, 3, 5, 9: 0.5, 2.5, 4.5, 8.5.
    const outs = scope(() => {
      const rm = tensor([1]);
      const rv = tensor([4]);
      const y = batchNorm2d(tensor([1, 3, 5, 9], [1, 1, 2, 2]), tensor([2]), tensor([0.5]), rm, rv, { training: false, eps: 0 });
      return [y, rm, rv];
    });
    const [y, rm, rv] = await readAll(outs);
    assertClose(y, [0.5, 2.5, 4.5, 8.5], { rtol: 1e-6 });
    expect([...rm, ...rv]).toEqual([1, 4]);
    for (const t of outs) t.dispose();
  });

  it('rejects parameters of the wrong size and training on one value per channel', () => {
    scope(() => {
      const x = Tensor.empty([2, 3, 4, 4]);
      const c3 = () => Tensor.empty([3]);
      expect(() => batchNorm2d(x, Tensor.empty([4]), c3(), c3(), c3(), { training: true })).toThrow(/weight must have shape \[3\].*got \[4\]/);
      expect(() => batchNorm2d(x, c3(), c3(), c3(), Tensor.empty([3, 1]), { training: true })).toThrow(/running_var must have shape \[3\]/);
      expect(() => batchNorm2d(Tensor.empty([2, 3, 4]), c3(), c3(), c3(), c3(), { training: true })).toThrow(/expected \[batch, channels, h, w\]/);
      expect(() => batchNorm2d(Tensor.empty([1, 3, 1, 1]), c3(), c3(), c3(), c3(), { training: true })).toThrow(/more than one value per channel/);
    });
  });
});

describe('batchNorm2d: forward against the float64 reference', () => {
  it('training and evaluation, with and without ReLU, channels 3/12/23/45, batch 1 and 2-D inputs: y and the updated running statistics', async () => {
    await withSeed('batchnorm forward', async (rng, seed) => {
      const runs: { c: BnCase; options: BatchNormOptions }[] = [];
      for (const shape of SHAPES) {
        for (const training of [true, false]) {
          for (const relu of [false, true]) runs.push({ c: bnCase(rng, shape), options: { training, relu } });
        }
      }
      const outs = scope(() =>
        runs.flatMap(({ c, options }) => {
          const rm = tensor(c.runningMean);
          const rv = tensor(c.runningVar);
          const y = batchNorm2d(tensor(c.x, c.shape), tensor(c.gamma), tensor(c.beta), rm, rv, options);
          return [y, rm, rv];
        }),
      );
      const values = await readAll(outs);
      runs.forEach(({ c, options }, k) => {
        const expected = ref.batchNorm2d(c.x, c.shape, c.gamma, c.beta, c.runningMean, c.runningVar, options);
        const label = `${options.training ? 'training' : 'eval'}${options.relu ? '+relu' : ''} [${c.shape.join(', ')}]`;
        // y: a sum over N·H·W values feeds mean and variance; |y| ≲ 3.
        assertClose(values[3 * k], expected.y, { ...tolerance(ref.bnLayout(c.shape).batch * ref.bnLayout(c.shape).hw), label: `${label} y`, seed, shape: c.shape });
        assertClose(values[3 * k + 1], expected.runningMean, { atol: 1e-6, rtol: 1e-5, label: `${label} running_mean`, seed });
        assertClose(values[3 * k + 2], expected.runningVar, { atol: 1e-6, rtol: 1e-5, label: `${label} running_var`, seed });
      });
      for (const t of outs) t.dispose();
    });
  });

  // 5×5 planes take the scalar statistics kernel, 4×4 planes (H·W a multiple of 4) the vec4 one: each shifts its sums.
  it.each([[[4, 2, 5, 5]], [[4, 2, 4, 4]]])('stays accurate for a channel with mean 100 and spread 0.1 (shifted sums do not cancel), %j', async (shape) => {
    // Σx² − (Σx)²/M in float32 would lose everything here: Σx²/M ≈ 1e4 carries an error near ulp(1e4) ≈ 1e-3,
    // a third of the variance itself (0.1²/3 ≈ 3.3e-3). Only the float32 rounding of the mean is unavoidable:
    // ≤ ulp(100)/2 ≈ 3.8e-6, i.e. up to 6.6e-5 in x̂ (std ≈ 0.058) and 1e-4 in y for |γ| ≤ 1.5; the tolerance
    // allows twice that.
    await withSeed('batchnorm large mean', async (rng, seed) => {
      const c = bnCase(rng, shape);
      const hw = shape[2] * shape[3];
      // Channel 0 of every sample: mean 100, spread 0.1; channel 1 keeps its ordinary values.
      for (let n = 0; n < 4; n++) for (let j = 0; j < hw; j++) c.x[n * 2 * hw + j] = 100 + 0.1 * (2 * rng.uniform() - 1);
      const outs = scope(() => {
        const rm = tensor(c.runningMean);
        const rv = tensor(c.runningVar);
        return [batchNorm2d(tensor(c.x, shape), tensor(c.gamma), tensor(c.beta), rm, rv, { training: true }), rm, rv];
      });
      const [y, rm, rv] = await readAll(outs);
      const expected = ref.batchNorm2d(c.x, shape, c.gamma, c.beta, c.runningMean, c.runningVar, { training: true });
      assertClose(y, expected.y, { atol: 2e-4, rtol: 1e-4, label: 'y', seed, shape });
      assertClose(rm, expected.runningMean, { rtol: 1e-6, label: 'running_mean', seed });
      assertClose(rv, expected.runningVar, { rtol: 1e-4, label: 'running_var', seed });
      for (const t of outs) t.dispose();
    });
  });

  it.each([[[5, 3, 33, 31]], [[5, 3, 32, 32]]])('sums a channel over several chunks (%j: 4 samples per chunk, batch 5) forward and backward', async (shape) => {
    // 4096 elements per chunk → samples_per_chunk = 4 → chunks = 2, the last one partial; checked against the op's
    // own layout, so a changed CHUNK_ELEMENTS cannot quietly make this a one-chunk case. The backward is
    // compared with the float64 analytic backward (itself checked against finite differences below).
    expect(reductionChunks(shape[0], shape[2] * shape[3])).toEqual({ chunks: 2, samplesPerChunk: 4 });
    await withSeed('batchnorm chunks', async (rng, seed) => {
      const c = bnCase(rng, shape);
      const dy = randomArray(rng, numel(shape), -1, 1);
      const [y, dx, dg, db] = await scopeAsync(async () => {
        const x = tensor(c.x, shape);
        const gamma = tensor(c.gamma);
        const beta = tensor(c.beta);
        x.requiresGrad = gamma.requiresGrad = beta.requiresGrad = true;
        const out = batchNorm2d(x, gamma, beta, tensor(c.runningMean), tensor(c.runningVar), { training: true, relu: true });
        out.backward(tensor(dy, shape));
        return readAll([out, x.grad!, gamma.grad!, beta.grad!]);
      });
      const forward = ref.batchNorm2d(c.x, shape, c.gamma, c.beta, c.runningMean, c.runningVar, { training: true, relu: true });
      const backward = ref.batchNorm2dBackward(c.x, shape, c.gamma, c.beta, forward, dy, { training: true, relu: true });
      const m = shape[0] * shape[2] * shape[3];
      assertClose(y, forward.y, { ...tolerance(m), label: 'y', seed, shape });
      assertClose(dx, backward.dx, { ...tolerance(m), label: 'dx', seed, shape });
      // dγ and dβ are sums of M ≈ 5000 terms of size ≲ 1: absolute error grows like M·ulp.
      assertClose(dg, backward.dgamma, { atol: 1e-6 * m, rtol: 1e-4, label: 'dgamma', seed });
      assertClose(db, backward.dbeta, { atol: 1e-6 * m, rtol: 1e-4, label: 'dbeta', seed });
    });
  });
});

describe('batchNorm2d: backward against finite differences of the float64 reference', () => {
  for (const training of [true, false]) {
    for (const relu of [false, true]) {
      const mode = `${training ? 'training' : 'eval'}${relu ? ' + fused ReLU' : ''}`;
      it(`dx, dγ, dβ in ${mode} (channels 3/12/23/45, batch 1, odd spatial, 2-D)`, async () => {
        await withSeed(`batchnorm backward ${mode}`, async (rng, seed) => {
          for (const shape of SHAPES) {
            const c = relu ? bnCaseAwayFromKink(rng, shape, training) : bnCase(rng, shape);
            const { batch, hw } = ref.bnLayout(shape);
            await gradcheck(
              {
                label: `batchNorm2d ${mode} [${shape.join(', ')}]`,
                inputs: [
                  { data: c.x, shape },
                  { data: c.gamma, shape: [c.gamma.length] },
                  { data: c.beta, shape: [c.beta.length] },
                  { data: c.runningMean, shape: [c.runningMean.length], requiresGrad: false },
                  { data: c.runningVar, shape: [c.runningVar.length], requiresGrad: false },
                ],
                op: (x, g, b, rm, rv) => batchNorm2d(x, g, b, rm, rv, { training, relu }),
                reference: (x, g, b, rm, rv) => ref.batchNorm2d(x, shape, g, b, rm, rv, { training, relu }).y,
                outputShape: shape,
                reductionLength: batch * hw,
                seed,
              },
              rng,
            );
          }
        });
      });
    }
  }

  it('the float64 analytic backward (used by the reference ResNet) equals finite differences', async () => {
    await withSeed('batchnorm reference backward', (rng) => {
      for (const training of [true, false]) {
        for (const relu of [false, true]) {
          const shape = [3, 4, 3, 2];
          const c = relu ? bnCaseAwayFromKink(rng, shape, training) : bnCase(rng, shape);
          const dy = randomArray(rng, numel(shape), -1, 1);
          const inputs = [c.x, c.gamma, c.beta, c.runningMean, c.runningVar].map((a) => Float64Array.from(a));
          const f = (x: Float64Array, g: Float64Array, b: Float64Array, rm: Float64Array, rv: Float64Array) =>
            ref.batchNorm2d(x, shape, g, b, rm, rv, { training, relu }).y;
          const forward = ref.batchNorm2d(c.x, shape, c.gamma, c.beta, c.runningMean, c.runningVar, { training, relu });
          const analytic = ref.batchNorm2dBackward(c.x, shape, c.gamma, c.beta, forward, dy, { training, relu });
          const label = `${training ? 'training' : 'eval'}${relu ? '+relu' : ''}`;
          // Both sides are float64: only the O(h²) truncation and float64 rounding separate them.
          const tol = { atol: 1e-7, rtol: 1e-6 };
          assertClose(analytic.dx, finiteDifferences(f as never, inputs, 0, dy), { ...tol, label: `${label} dx` });
          assertClose(analytic.dgamma, finiteDifferences(f as never, inputs, 1, dy), { ...tol, label: `${label} dgamma` });
          assertClose(analytic.dbeta, finiteDifferences(f as never, inputs, 2, dy), { ...tol, label: `${label} dbeta` });
        }
      }
    });
  });
});

describe('batchNorm2d: the fused ReLU at its kink', () => {
  // x takes the values 0, 1, 2, 3 equally often in every channel (mean 1.5, variance 1.25), and β is chosen so
  // that x = 2 lands within a few float32 roundings of the kink, on either side depending on the channel. With
  // dy = 1, dβ counts the elements whose gradient passed the ReLU: exactly those the forward left positive.
  it.each([[[8, 64, 4, 4]], [[8, 64, 3, 5]]])('backward passes the gradient exactly where the forward output is positive (%j)', async (shape) => {
    const [batch, channels, h, w] = shape;
    const hw = h * w;
    const x = new Float32Array(batch * channels * hw);
    for (let n = 0; n < batch; n++) {
      for (let c = 0; c < channels; c++) {
        for (let i = 0; i < hw; i++) x[(n * channels + c) * hw + i] = (n * hw + i) % 4;
      }
    }
    const invstd = 1 / Math.sqrt(1.25 + 1e-5);
    const gamma = Float32Array.from({ length: channels }, (_, c) => 0.5 + c / channels);
    const beta = Float32Array.from(gamma, (g, c) => -0.5 * g * invstd * (1 + ((c % 9) - 4) * 2 ** -23));
    const [y, db] = await scopeAsync(async () => {
      const xt = tensor(x, shape);
      const g = tensor(gamma);
      const b = tensor(beta);
      b.requiresGrad = true;
      const out = batchNorm2d(xt, g, b, tensor(new Float32Array(channels)), tensor(new Float32Array(channels).fill(1)), { training: true, relu: true });
      out.backward(tensor(new Float32Array(x.length).fill(1), shape));
      return readAll([out, b.grad!]);
    });
    const positive = new Array<number>(channels).fill(0);
    let kinkPassed = 0;
    let kinkClamped = 0;
    for (let i = 0; i < x.length; i++) {
      const c = Math.floor(i / hw) % channels;
      if (y[i] > 0) positive[c]++;
      if (x[i] === 2) y[i] > 0 ? kinkPassed++ : kinkClamped++;
    }
    // Both sides of the kink occur, or the test would not tell one rounding from another.
    expect(kinkPassed).toBeGreaterThan(0);
    expect(kinkClamped).toBeGreaterThan(0);
    expect(Array.from(db)).toEqual(positive);
  });
});
