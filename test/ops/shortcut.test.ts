// The option-A shortcut (src/ops/shortcut.ts) against test/reference/shortcut.ts, which composes it as the
// SFP code does: a 1×1 average pool with stride 2, then torch.cat((x, x.mul(0)), 1).
import { describe, expect, it } from 'vitest';
import { shortcutA } from '../../src/ops/shortcut.js';
import { Tensor, scope, scopeAsync } from '../../src/tensor/tensor.js';
import { tensor } from '../../src/tensor/create.js';
import * as ref from '../reference/shortcut.js';
import { numel } from '../reference/elementwise.js';
import { assertEqual, readAll } from '../support/allclose.js';
import { gradcheck } from '../support/gradcheck.js';
import { randomArray, withSeed } from '../support/random.js';

describe('shortcutA: cases worked by hand', () => {
  it('keeps even rows and columns and appends as many zero channels: [1, 1, 4, 4] → [1, 2, 2, 2]; dx routes dy back', async () => {
    //  1  2  3  4
    //  5  6  7  8     sampled at (0,0), (0,2), (2,0), (2,2): 1, 3, 9, 11
    //  9 10 11 12
    // 13 14 15 16
    const [y, dx] = await scopeAsync(async () => {
      const x = tensor(Array.from({ length: 16 }, (_, i) => i + 1), [1, 1, 4, 4]);
      x.requiresGrad = true;
      const out = shortcutA(x, 2, 2);
      expect(out.shape).toEqual([1, 2, 2, 2]);
      // dy of the appended zero channel (5…8) must not reach x.
      out.backward(tensor([1, 2, 3, 4, 5, 6, 7, 8], [1, 2, 2, 2]));
      return readAll([out, x.grad!]);
    });
    assertEqual(y, [1, 3, 9, 11, 0, 0, 0, 0]);
    assertEqual(dx, [1, 0, 2, 0, 0, 0, 0, 0, 3, 0, 4, 0, 0, 0, 0, 0]);
  });

  it('an odd size keeps the last row and column: 5×5 → 3×3 (ceil(5/2), as the 1×1 pool gives)', async () => {
    const [y] = await scopeAsync(async () => readAll([shortcutA(tensor(Array.from({ length: 25 }, (_, i) => i), [1, 1, 5, 5]), 1, 2)]));
    assertEqual(y, [0, 2, 4, 10, 12, 14, 20, 22, 24]);
  });

  it('rejects fewer output channels than input channels and inputs that are not 4-D', () => {
    scope(() => {
      expect(() => shortcutA(Tensor.empty([1, 4, 4, 4]), 2, 2)).toThrow(/cannot narrow 4 channels to 2/);
      expect(() => shortcutA(Tensor.empty([4, 4, 4]), 8, 2)).toThrow(/expected \[batch, channels, h, w\]/);
    });
  });
});

describe('shortcutA: random shapes against the float64 reference', () => {
  it('doubles channels at stride 2 (16→32, 32→64 as in the CIFAR ResNets), odd sizes, a batch of 1, stride 1; backward by finite differences', async () => {
    await withSeed('shortcutA', async (rng, seed) => {
      const cases: [number[], number, number][] = [
        [[2, 16, 8, 8], 32, 2],
        [[2, 6, 4, 16], 9, 2], // rows of 8 outputs: four per invocation (vec4)
        [[1, 32, 4, 4], 64, 2],
        [[3, 5, 7, 9], 10, 2],
        [[2, 3, 5, 5], 7, 2],
        [[2, 4, 3, 3], 6, 1],
      ];
      for (const [shape, outChannels, stride] of cases) {
        const x = randomArray(rng, numel(shape));
        await gradcheck(
          {
            label: `shortcutA [${shape.join(', ')}] → ${outChannels} stride ${stride}`,
            inputs: [{ data: x, shape }],
            op: (t) => shortcutA(t, outChannels, stride),
            reference: (t) => ref.shortcutA(t, shape, outChannels, stride).data,
            outputShape: ref.shortcutA(x, shape, outChannels, stride).shape,
            seed,
          },
          rng,
        );
      }
    });
  });

  it('the float64 backward is the transpose of the forward: <shortcutA(x), dy> = <x, backward(dy)>', async () => {
    await withSeed('shortcutA reference backward', (rng) => {
      const shape = [2, 3, 5, 6];
      const x = randomArray(rng, numel(shape));
      const y = ref.shortcutA(x, shape, 8, 2);
      const dy = randomArray(rng, y.data.length);
      const dx = ref.shortcutABackward(dy, shape, 8, 2);
      const lhs = y.data.reduce((s, v, i) => s + v * dy[i], 0);
      const rhs = dx.reduce((s, v, i) => s + v * x[i], 0);
      expect(Math.abs(lhs - rhs)).toBeLessThan(1e-12 * (1 + Math.abs(lhs)));
    });
  });
});
