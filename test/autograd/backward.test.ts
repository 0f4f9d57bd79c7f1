// The autograd engine (src/autograd/): accumulation, fan-out, which tensors get gradients, noGrad,
// deep graphs, and the messages for a backward that returns the wrong shapes.
import { describe, expect, it } from 'vitest';
import { defineOp } from '../../src/autograd/function.js';
import { isGradEnabled, noGrad } from '../../src/autograd/mode.js';
import { add, mul, neg, relu, scale } from '../../src/ops/elementwise.js';
import { sum } from '../../src/ops/reduce.js';
import { flatten, reshape } from '../../src/ops/view.js';
import { Tensor, scope, scopeAsync } from '../../src/tensor/tensor.js';
import { tensor } from '../../src/tensor/create.js';
import { assertEqual, readAll } from '../support/allclose.js';
import { memorySnapshot } from '../support/memory.js';
import { gradcheck } from '../support/gradcheck.js';
import { randomArray, withSeed } from '../support/random.js';

function leaf(values: number[], shape?: number[]): Tensor {
  const t = tensor(values, shape);
  t.requiresGrad = true;
  return t;
}

describe('autograd', () => {
  it('accumulates into .grad across two backward calls: d/dx Σ c·x twice gives 2c', async () => {
    const [g] = await scopeAsync(async () => {
      const x = leaf([1, 2, 3]);
      const c = tensor([5, -1, 0.5]);
      sum(mul(x, c)).backward();
      sum(mul(x, c)).backward();
      return readAll([x.grad!]);
    });
    assertEqual(g, [10, -2, 1]);
  });

  it('a kept parameter accumulates across steps in separate scopes, and its gradient outlives them', async () => {
    const w = leaf([1, 2, 3]).keep();
    const before = memorySnapshot();
    for (let step = 0; step < 2; step++) scope(() => sum(mul(w, w)).backward());
    expect(w.grad?.released).toBe(false);
    assertEqual(await w.grad!.toArray(), [4, 8, 12]); // 2 · 2w
    // Only the gradient stays alive: every intermediate went back to the pool.
    expect(memorySnapshot().liveBuffers).toBe(before.liveBuffers + 1);
    w.grad!.dispose();
    w.dispose();
  });

  it('a tensor used twice gets both contributions: x·x → 2x, x + x → 2, relu(x) used twice → 2·[x > 0]', async () => {
    const grads = await scopeAsync(async () => {
      const a = leaf([1, -2, 3]);
      const b = leaf([1, -2, 3]);
      const c = leaf([1, -2, 3]);
      sum(mul(a, a)).backward();
      sum(add(b, b)).backward();
      const r = relu(c);
      sum(add(r, mul(r, tensor([2, 2, 2])))).backward(); // r + 2r: dr = 3
      return readAll([a.grad!, b.grad!, c.grad!]);
    });
    assertEqual(grads[0], [2, -4, 6]);
    assertEqual(grads[1], [2, 2, 2]);
    assertEqual(grads[2], [3, 0, 3]);
  });

  it("add's one gradient handed to a leaf and to an intermediate is not corrupted by accumulation into the leaf", async () => {
    // y = (3x + x)·(h + h) with h = 2x: the leaf x receives add's dy directly and again through 3x, and h
    // receives the same dy twice (shared storage); dy/dx = 4·(4x) + 4x·4 = 32x.
    const grad = await scopeAsync(async () => {
      const x = leaf([1, -2, 0.5]);
      const h = scale(x, 2);
      sum(mul(add(scale(x, 3), x), add(h, h))).backward();
      return x.grad!.toArray();
    });
    assertEqual(grad, [32, -64, 16]);
  });

  it('a gradient passed through to a leaf while another node still holds a view of it: 2w² + 3w gives 4w + 3', async () => {
    const [g] = await scopeAsync(async () => {
      const w = leaf([1, 2, 3, 4]);
      const c = tensor([0, 0, 0, 0]);
      const b = scale(w, 2);
      // f = M + t hands one dy to both; t = b + a hands it on; a = w + c passes it to w untouched, and
      // M's and b's contributions are added into w.grad afterwards.
      sum(add(mul(w, b), add(b, add(w, c)))).backward();
      return readAll([w.grad!]);
    });
    assertEqual(g, [7, 11, 15, 19]);
  });

  it('one leaf reached twice through pass-through adds: Σ (w + c) + (w + c) gives 2, not a write into its own input', async () => {
    const [g] = await scopeAsync(async () => {
      const w = leaf([1, 2, 3, 4]);
      const c = tensor([1, 1, 1, 1]);
      sum(add(add(w, c), add(w, c))).backward();
      return readAll([w.grad!]);
    });
    assertEqual(g, [2, 2, 2, 2]);
  });

  it('two leaves fed one gradient own separate .grad storage: a second backward adds 1 to each, not 2', async () => {
    const grads = await scopeAsync(async () => {
      const w1 = leaf([1, 2]);
      const w2 = leaf([3, 4]);
      const c = tensor([0, 0]);
      for (let i = 0; i < 2; i++) sum(add(add(w1, c), add(w2, c))).backward();
      return readAll([w1.grad!, w2.grad!]);
    });
    assertEqual(grads[0], [2, 2]);
    assertEqual(grads[1], [2, 2]);
  });

  it('inputs with requiresGrad false get no gradient, nor do intermediate tensors', async () => {
    const [gx] = await scopeAsync(async () => {
      const x = leaf([1, 2]);
      const c = tensor([3, 4]);
      const h = mul(x, c);
      expect(h.requiresGrad).toBe(true);
      sum(h).backward();
      expect(c.grad).toBeNull();
      expect(h.grad).toBeNull();
      // An op whose inputs need no gradient records nothing.
      const constant = mul(c, c);
      expect(constant.requiresGrad).toBe(false);
      expect(constant.node).toBeNull();
      return readAll([x.grad!]);
    });
    assertEqual(gx, [3, 4]);
  });

  it('noGrad records nothing, restores the mode afterwards (also after a throw), and backward then refuses', () => {
    scope(() => {
      const x = leaf([1, 2]);
      const y = noGrad(() => {
        expect(isGradEnabled()).toBe(false);
        return sum(mul(x, x));
      });
      expect(isGradEnabled()).toBe(true);
      expect(y.requiresGrad).toBe(false);
      expect(y.node).toBeNull();
      expect(() => y.backward()).toThrow(/does not require grad/);
      expect(() =>
        noGrad(() => {
          throw new Error('inside');
        }),
      ).toThrow('inside');
      expect(isGradEnabled()).toBe(true);
      expect(x.grad).toBeNull();
    });
  });

  it('noGrad refuses an async function, whose awaits would leave recording off for whatever runs meanwhile', async () => {
    let release!: () => void;
    const pending = new Promise<void>((resolve) => (release = resolve));
    expect(() => noGrad(async () => pending)).toThrow(/noGrad\(\) takes a synchronous function/);
    // The mode is back on at once, not when the function's promise settles.
    expect(isGradEnabled()).toBe(true);
    release();
    await pending;
  });

  it('a 300-deep chain of ops differentiates correctly: (−1)^300 = 1', async () => {
    const [g] = await scopeAsync(async () => {
      const x = leaf([1, -2, 3]);
      let y = x;
      for (let i = 0; i < 300; i++) y = neg(y);
      sum(y).backward();
      return readAll([x.grad!]);
    });
    assertEqual(g, [1, 1, 1]);
  });

  it('a 50,000-deep graph does not overflow the stack (the topological sort is iterative)', async () => {
    // Reshapes are views: the graph is deep but no kernel runs, so this stays fast.
    const [g] = await scopeAsync(async () => {
      const x = leaf([1, 2, 3, 4, 5, 6], [2, 3]);
      let y = x;
      for (let i = 0; i < 50_000; i++) y = reshape(y, i % 2 ? [2, 3] : [3, 2]);
      sum(scale(y, 2)).backward();
      return readAll([x.grad!]);
    });
    assertEqual(g, [2, 2, 2, 2, 2, 2]);
  });

  it('reshape and flatten hand the gradient back in the input\'s shape, element for element (gradcheck)', async () => {
    await withSeed('reshape gradcheck', async (rng, seed) => {
      const shape = [2, 3, 4];
      const data = randomArray(rng, 24);
      const cases: [string, (x: Tensor) => Tensor, number[]][] = [
        ['reshape [4, -1]', (x) => reshape(x, [4, -1]), [4, 6]],
        ['flatten', flatten, [2, 12]],
      ];
      for (const [label, op, outputShape] of cases) {
        // Row-major data is the same sequence in either shape.
        await gradcheck({ label, inputs: [{ data, shape }], op, reference: (x) => Float64Array.from(x), outputShape, seed }, rng);
      }
    });
  });

  it('a backward that returns a gradient of the wrong shape fails with both shapes in the message', () => {
    const bad = defineOp('badShape', {
      forward: (_ctx, x: Tensor) => scale(x, 1),
      backward: () => [Tensor.empty([3])],
    });
    const wrongCount = defineOp('badCount', {
      forward: (_ctx, x: Tensor) => scale(x, 1),
      backward: (_ctx, dy) => [dy, dy],
    });
    scope(() => {
      expect(() => sum(bad(leaf([1, 2, 3, 4, 5, 6], [2, 3]))).backward()).toThrow(/badShape\.backward: gradient \[3\] for input 0 of shape \[2, 3\]/);
      expect(() => sum(wrongCount(leaf([1, 2]))).backward()).toThrow(/badCount\.backward returned 2 gradients for 1 inputs/);
    });
  });

  it('frees what forward saved once its node has run', () => {
    scope(() => {
      const x = leaf([1, 2, 3]);
      const y = mul(x, x);
      const node = y.node!;
      expect(node.ctx?.saved.length).toBe(2);
      sum(y).backward();
      expect(node.ctx).toBeNull();
    });
  });

  it('a second backward through a graph whose saved tensors were freed throws instead of silently giving no gradient', () => {
    scope(() => {
      const x = leaf([1, 2, 3]);
      const h = mul(x, x);
      sum(h).backward();
      expect(() => sum(h).backward()).toThrow(/already/);
    });
  });

  it('backward needs a scalar unless given a seed of the output shape', async () => {
    const [g] = await scopeAsync(async () => {
      const x = leaf([1, 2, 3]);
      const y = scale(x, 3);
      expect(() => y.backward()).toThrow(/needs a scalar, got \[3\] f32/);
      y.backward(tensor([1, 0, -1]));
      return readAll([x.grad!]);
    });
    assertEqual(g, [3, 0, -3]);
  });

  it("backward(seed) never aliases the caller's seed: it can be disposed, and is not modified by accumulation", async () => {
    const [gx, gh, seedAfter] = await scopeAsync(async () => {
      const x = leaf([1, 2, 3]);
      const h = leaf([1, 2, 3]);
      const seed = tensor([1, 10, 100]);
      add(x, tensor([0, 0, 0])).backward(seed); // x.grad would be the seed itself
      add(x, tensor([0, 0, 0])).backward(seed); // accumulates into x.grad
      const twice = scale(h, 1);
      add(twice, twice).backward(seed); // the seed flows into a node whose output is used twice
      const kept = await seed.toArray();
      seed.dispose();
      return [...(await readAll([x.grad!, h.grad!])), kept];
    });
    assertEqual(gx, [2, 20, 200]);
    assertEqual(gh, [2, 20, 200]);
    assertEqual(seedAfter, [1, 10, 100]);
  });
});
