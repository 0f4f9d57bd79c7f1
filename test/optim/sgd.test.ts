// SGD (src/optim/sgd.ts) against test/reference/sgd.ts, the float64 form of torch.optim.SGD's update: an exact
// case worked by hand (the first step sets v = g, undampened), then several steps of every option combination.
import { afterEach, describe, expect, it } from 'vitest';
import { SGD, type SGDOptions } from '../../src/optim/sgd.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { SgdReference } from '../reference/sgd.js';
import { assertClose, assertEqual, readAll } from '../support/allclose.js';
import { randomArray, withSeed } from '../support/random.js';

const live: Tensor[] = [];
afterEach(() => {
  for (const t of live.splice(0)) t.dispose();
});

/** A parameter outside any scope (as a module's are), released after the test. */
function parameter(values: ArrayLike<number>): Tensor {
  const p = Tensor.fromArray(values, [values.length]).keep();
  p.requiresGrad = true;
  live.push(p);
  return p;
}

function setGrad(p: Tensor, values: ArrayLike<number>): void {
  p.grad = Tensor.fromArray(values, p.shape).keep();
}

function releaseOptimizer(opt: SGD): void {
  opt.zeroGrad();
  for (const v of opt.velocity.values()) v.dispose();
}

describe('SGD: exact small cases', () => {
  it('the first step sets v = g without dampening; the second v = momentum·v + (1 − dampening)·g', async () => {
    // lr 0.5, momentum 0.5, dampening 0.5; p = [1, 2].
    // step 1, g = [0.5, −1]: v = g = [0.5, −1]           p = [1 − 0.25, 2 + 0.5]        = [0.75, 2.5]
    // step 2, g = [1, 1]:    v = 0.5·v + 0.5·g = [0.75, 0] p = [0.75 − 0.375, 2.5 − 0]   = [0.375, 2.5]
    const p = parameter([1, 2]);
    const opt = new SGD([p], { lr: 0.5, momentum: 0.5, dampening: 0.5 });
    setGrad(p, [0.5, -1]);
    opt.step();
    const [p1, v1] = await readAll([p, opt.velocity.get(p)!]);
    assertEqual(p1, [0.75, 2.5], { label: 'p after step 1' });
    assertEqual(v1, [0.5, -1], { label: 'v after step 1' });
    opt.zeroGrad();
    expect(p.grad).toBeNull();
    setGrad(p, [1, 1]);
    opt.step();
    const [p2, v2] = await readAll([p, opt.velocity.get(p)!]);
    assertEqual(p2, [0.375, 2.5], { label: 'p after step 2' });
    assertEqual(v2, [0.75, 0], { label: 'v after step 2' });
    expect(opt.stepCount).toBe(2);
    releaseOptimizer(opt);
  });

  it('Nesterov steps by g + momentum·v, and weight decay adds wd·p to g first', async () => {
    // p = [2], g = [1], wd 0.5, momentum 0.5, lr 0.25, Nesterov: d = 1 + 0.5·2 = 2; v = 2; step = 2 + 0.5·2 = 3; p = 2 − 0.75 = 1.25.
    const p = parameter([2]);
    const opt = new SGD([p], { lr: 0.25, momentum: 0.5, weightDecay: 0.5, nesterov: true });
    setGrad(p, [1]);
    opt.step();
    const [value, v] = await readAll([p, opt.velocity.get(p)!]);
    assertEqual(value, [1.25]);
    assertEqual(v, [2]);
    releaseOptimizer(opt);
  });

  it('skips parameters without a gradient and creates their momentum buffer only at their first real step', async () => {
    const a = parameter([1, 1]);
    const b = parameter([4]);
    const opt = new SGD([a, b], { lr: 0.5, momentum: 0.5 });
    setGrad(a, [1, 2]);
    opt.step();
    expect(opt.velocity.has(b)).toBe(false);
    const [bValue] = await readAll([b]);
    assertEqual(bValue, [4]);
    opt.zeroGrad();
    // b's first gradient arrives at step 2: its buffer starts at g, not at momentum·0 + g.
    setGrad(b, [2]);
    opt.step();
    const [aValue, b2, vb] = await readAll([a, b, opt.velocity.get(b)!]);
    assertEqual(aValue, [0.5, 0], { label: 'a moved once' });
    assertEqual(b2, [3], { label: 'b = 4 − 0.5·2' });
    assertEqual(vb, [2], { label: 'b buffer = g' });
    releaseOptimizer(opt);
  });

  it('loadVelocity replaces every momentum buffer (releasing the old ones), and a parameter the map lacks has none, as after load_state_dict', async () => {
    const a = parameter([1, 1]);
    const b = parameter([4]);
    const opt = new SGD([a, b], { lr: 0.5, momentum: 0.5 });
    setGrad(a, [1, 2]);
    setGrad(b, [3]);
    opt.step();
    opt.zeroGrad();
    const old = [...opt.velocity.values()];
    opt.loadVelocity([['a', a], ['b', b]], new Map([['a', { dtype: 'f32' as const, shape: [2], data: Float32Array.of(7, 8) }]]));
    expect(old.every((v) => v.released)).toBe(true);
    expect(opt.velocity.has(b)).toBe(false);
    assertEqual((await readAll([opt.velocity.get(a)!]))[0], [7, 8]);
    expect(() => opt.loadVelocity([['a', a]], new Map([['c', { dtype: 'f32' as const, shape: [1], data: Float32Array.of(1) }]]))).toThrow(
      "momentum for 'c', which the model does not have",
    );
    releaseOptimizer(opt);
    a.dispose();
    b.dispose();
  });

  it('rejects what torch.optim.SGD rejects: negative lr, momentum or weight decay; Nesterov without momentum or with dampening', () => {
    expect(() => new SGD([], { lr: -0.1 })).toThrow(/lr must be ≥ 0, got -0.1/);
    expect(() => new SGD([], { lr: NaN })).toThrow(/lr must be ≥ 0/);
    expect(() => new SGD([], { lr: 0.1, momentum: -0.9 })).toThrow(/momentum must be ≥ 0, got -0.9/);
    expect(() => new SGD([], { lr: 0.1, weightDecay: -1e-4 })).toThrow(/weightDecay must be ≥ 0, got -0.0001/);
    expect(() => new SGD([], { lr: 0.1, nesterov: true })).toThrow(/Nesterov momentum needs momentum > 0 and dampening 0/);
    expect(() => new SGD([], { lr: 0.1, momentum: 0.9, dampening: 0.1, nesterov: true })).toThrow(/Nesterov/);
  });
});

describe('SGD: several steps against the float64 reference of torch.optim.SGD', () => {
  const configs: SGDOptions[] = [
    { lr: 0.1 },
    { lr: 0.1, weightDecay: 5e-4 },
    { lr: 0.05, momentum: 0.9 },
    { lr: 0.05, momentum: 0.9, dampening: 0.5 },
    { lr: 0.1, momentum: 0.9, dampening: 0.3, weightDecay: 1e-2 },
    { lr: 0.1, momentum: 0.9, weightDecay: 5e-4, nesterov: true }, // the SFP paper's CIFAR setting
  ];

  for (const options of configs) {
    it(`${JSON.stringify(options)}: 6 steps, a changing lr, one parameter without a gradient at step 3`, async () => {
      await withSeed(`sgd ${JSON.stringify(options)}`, async (rng, seed) => {
        // Sizes around the 256-wide workgroup, and a scalar.
        const sizes = [1, 255, 257, 600];
        const initial = sizes.map((n) => randomArray(rng, n, -1, 1));
        const params = initial.map((values) => parameter(values));
        const opt = new SGD(params, options);
        const reference = new SgdReference(initial.map((v) => Float64Array.from(v)), { ...options });
        for (let step = 0; step < 6; step++) {
          const lr = options.lr * (step < 3 ? 1 : 0.2);
          opt.lr = lr;
          reference.options = { ...options, lr };
          const grads = sizes.map((n, k) => (step === 2 && k === 1 ? null : randomArray(rng, n, -1, 1)));
          params.forEach((p, k) => grads[k] && setGrad(p, grads[k]!));
          opt.step();
          reference.step(grads);
          opt.zeroGrad();
        }
        const velocities = options.momentum ? params.map((p) => opt.velocity.get(p)!) : [];
        const values = await readAll([...params, ...velocities]);
        // Each step rounds p, v and the update once in float32: a few ulps of |p| ≲ 1 after six steps.
        params.forEach((_, k) => {
          assertClose(values[k], reference.params[k], { atol: 1e-6, rtol: 1e-6, label: `param ${k} [${sizes[k]}]`, seed });
        });
        velocities.forEach((_, k) => {
          assertClose(values[params.length + k], reference.buffers[k]!, { atol: 1e-6, rtol: 1e-6, label: `momentum buffer ${k}`, seed });
        });
        releaseOptimizer(opt);
      });
    });
  }
});
