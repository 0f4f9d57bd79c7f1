// index_select and the residual join of compaction (src/ops/gather.ts) against the float64 reference,
// forward exactly (they only move and add a few values) and backward by finite differences.
import { describe, expect, it } from 'vitest';
import { indexSelect, residualJoin } from '../../src/ops/gather.js';
import { Tensor, scopeAsync } from '../../src/tensor/tensor.js';
import * as ref from '../reference/gather.js';
import { assertEqual, readAll, toF32 } from '../support/allclose.js';
import { gradcheck } from '../support/gradcheck.js';
import { randomArray, randomAwayFromZero, randomInts, withSeed } from '../support/random.js';

describe('indexSelect', () => {
  it('picks channels 2, 0, 2 of a [1, 3, 1, 2] tensor by hand', async () => {
    const [y] = await scopeAsync(async () => {
      const x = Tensor.fromArray([1, 2, 3, 4, 5, 6], [1, 3, 1, 2]);
      return readAll([indexSelect(x, 1, Tensor.fromArray([2, 0, 2], [3], 'u32'))]);
    });
    expect([...y]).toEqual([5, 6, 1, 2, 5, 6]);
  });

  it('matches the reference exactly along every axis of awkward shapes (filters of a conv weight, BN vectors)', async () => {
    await withSeed('indexSelect sweep', async (rng, seed) => {
      for (const shape of [[33, 5, 3, 3], [17], [2, 31, 3, 5], [1, 1, 1, 1]]) {
        for (let axis = 0; axis < shape.length; axis++) {
          const n = shape.reduce((a, b) => a * b, 1);
          const x = randomInts(rng, n);
          const count = 1 + rng.int(shape[axis] + 2);
          const index = Uint32Array.from({ length: count }, () => rng.int(shape[axis]));
          const [y] = await scopeAsync(async () => readAll([indexSelect(Tensor.fromArray(x, shape), axis, Tensor.fromArray(index, [count], 'u32'))]));
          assertEqual(y, toF32(ref.indexSelect(x, shape, axis, index)), { label: `[${shape}] axis ${axis}`, seed });
        }
      }
    });
  });

  it('backward scatters dy back, duplicates adding up (gradcheck)', async () => {
    await withSeed('indexSelect gradcheck', async (rng, seed) => {
      const shape = [2, 5, 3];
      const index = Uint32Array.of(4, 1, 1, 0);
      await gradcheck(
        {
          label: 'indexSelect',
          inputs: [{ data: randomArray(rng, 30), shape }],
          op: (x) => indexSelect(x, 1, Tensor.fromArray(index, [4], 'u32')),
          reference: (x) => ref.indexSelect(x, shape, 1, index),
          outputShape: [shape[0], index.length, shape[2]],
          seed,
        },
        rng,
      );
    });
  });
});

describe('residualJoin', () => {
  it('relu(y[yIndex] + r[rIndex, ::2, ::2] + constants) by hand, with a −1 on each side', async () => {
    const [out] = await scopeAsync(async () => {
      const y = Tensor.fromArray([1, 2, 3, 4], [1, 1, 2, 2]);
      const r = Tensor.fromArray([10, 0, 20, 0, 0, 0, 0, 0, 30, 0, 40, 0, 0, 0, 0, 0], [1, 1, 4, 4]);
      const join = {
        yIndex: Tensor.fromArray([0, -1, 0], [3], 'i32'),
        rIndex: Tensor.fromArray([0, 0, -1], [3], 'i32'),
        constants: Tensor.fromArray([0.5, -15, -2.5], [3]),
        stride: 2,
      };
      return readAll([residualJoin(y, r, join)]);
    });
    expect([...out]).toEqual([11.5, 22.5, 33.5, 44.5, 0, 5, 15, 25, 0, 0, 0.5, 1.5]);
  });

  it('matches the reference exactly on random index maps, strides 1 and 2, odd sizes, rows of 4 and 8, planes of a multiple of 4', async () => {
    await withSeed('residualJoin sweep', async (rng, seed) => {
      for (const [batch, yChannels, rChannels, channels, rH, rW, stride] of [
        [2, 5, 7, 9, 5, 5, 1],
        [1, 12, 16, 32, 7, 5, 2],
        [3, 3, 3, 3, 1, 1, 2],
        // Rows of a multiple of 4 outputs: four per invocation.
        [2, 6, 9, 11, 8, 8, 1],
        [2, 12, 16, 32, 16, 16, 2],
        [1, 4, 4, 5, 4, 8, 2],
        // Stride 1, rows not a multiple of 4 but planes that are (ImageNet's 14×14): whole planes by vec4.
        [2, 6, 9, 11, 6, 6, 1],
        [1, 3, 4, 5, 14, 14, 1],
        // A block whose filters are all pruned: y has no channel, every index is −1 (scalar and vec4 paths).
        [2, 0, 4, 5, 8, 8, 1],
        [2, 0, 4, 5, 5, 5, 1],
      ]) {
        const h = Math.ceil(rH / stride);
        const w = Math.ceil(rW / stride);
        const yShape = [batch, yChannels, h, w];
        const rShape = [batch, rChannels, rH, rW];
        const y = randomInts(rng, batch * yChannels * h * w);
        const r = randomInts(rng, batch * rChannels * rH * rW);
        const yIndex = Int32Array.from({ length: channels }, () => rng.int(yChannels + 1) - 1);
        const rIndex = Int32Array.from({ length: channels }, () => rng.int(rChannels + 1) - 1);
        const constants = randomInts(rng, channels);
        const [out] = await scopeAsync(async () =>
          readAll([
            residualJoin(Tensor.fromArray(y, yShape), Tensor.fromArray(r, rShape), {
              yIndex: Tensor.fromArray(yIndex, [channels], 'i32'),
              rIndex: Tensor.fromArray(rIndex, [channels], 'i32'),
              constants: Tensor.fromArray(constants, [channels]),
              stride,
            }),
          ]),
        );
        assertEqual(out, toF32(ref.residualJoin(y, yShape, r, rShape, yIndex, rIndex, constants, stride)), { label: `stride ${stride}`, seed });
      }
    });
  });

  it('backward reaches y and r through the ReLU, the index maps (a channel read twice gets both) and the subsampling (gradcheck)', async () => {
    await withSeed('residualJoin gradcheck', async (rng, seed) => {
      const yShape = [2, 3, 3, 2];
      const rShape = [2, 4, 5, 3];
      // y channel 2 and r channel 0 are each read twice: their gradients are sums.
      const yIndex = Int32Array.of(2, -1, 0, 1, 2);
      const rIndex = Int32Array.of(0, 3, -1, 0, 2);
      const constants = Float32Array.of(0.25, -0.5, 0.3, -0.3, 0);
      // Inputs drawn until every output is off the ReLU's kink by far more than the finite-difference step, and
      // every output channel is active somewhere, so each read (the second of a channel read twice too) carries gradient.
      const preActivation = (y: Float32Array, r: Float32Array) =>
        ref.residualJoin(y, yShape, r, rShape, yIndex, rIndex, Float64Array.from(constants, (c) => c + 1e3), 2).map((v) => v - 1e3);
      const perChannel = yShape[2] * yShape[3];
      let y: Float32Array, r: Float32Array, pre: Float64Array;
      do {
        y = Float32Array.from(randomAwayFromZero(rng, 36, 0.05, 1));
        r = Float32Array.from(randomAwayFromZero(rng, 120, 0.05, 1));
        pre = preActivation(y, r);
      } while (
        pre.some((v) => Math.abs(v) < 1e-3) ||
        [...constants].some((_, c) => ![0, 1].some((n) => pre.subarray((n * 5 + c) * perChannel, (n * 5 + c + 1) * perChannel).some((v) => v > 0)))
      );
      await gradcheck(
        {
          label: 'residualJoin',
          inputs: [
            { data: y, shape: yShape },
            { data: r, shape: rShape },
          ],
          op: (y, r) =>
            residualJoin(y, r, {
              yIndex: Tensor.fromArray(yIndex, [5], 'i32'),
              rIndex: Tensor.fromArray(rIndex, [5], 'i32'),
              constants: Tensor.fromArray(constants, [5]),
              stride: 2,
            }),
          reference: (y, r) => ref.residualJoin(y, yShape, r, rShape, yIndex, rIndex, constants, 2),
          // [batch, one channel per constant, y's h and w].
          outputShape: [yShape[0], constants.length, yShape[2], yShape[3]],
          seed,
        },
        rng,
      );
    });
  });
});
