// The subgroup kernels index lanes by the subgroup size they were built for (SG). A driver may run a pipeline
// in subgroups of another width than the adapter reports; such a pipeline must write NaN, never plausible
// numbers. Built here for twice the device's width, every subgroup entry point (matmul, and conv2d's general,
// 3×3 and stride-2 kernels, forward and both backwards) writes only NaN; built for the device's own, the same
// work is finite.
import { describe, expect, it, vi } from 'vitest';
import { gpu, withClaimedSubgroupSize } from '../../src/gpu/encoder.js';
import { conv2d, conv2dUsesSubgroups } from '../../src/ops/conv2d.js';
import { matmul, matmulUsesSubgroups } from '../../src/ops/matmul.js';
import { Tensor, scopeAsync } from '../../src/tensor/tensor.js';
import { Rng } from '../../src/tensor/random.js';
import { readAll } from '../support/allclose.js';
import { randomArray, seedFor } from '../support/random.js';

const ENTRIES = [
  'matmul_subgroup.forward',
  'conv2d_subgroup.forward',
  'conv2d_subgroup.backward_input',
  'conv2d_subgroup.backward_weight',
  'conv2d_subgroup.forward_3x3',
  'conv2d_subgroup.backward_weight_3x3',
  'conv2d_subgroup.backward_input_3x3_s2',
];

/** Products, convolutions and their gradients that reach every subgroup entry point. */
function scenario(): Tensor[] {
  const rng = new Rng(seedFor('subgroup width'));
  const leaf = (shape: number[]) => {
    const t = Tensor.fromArray(randomArray(rng, shape.reduce((a, b) => a * b)), shape);
    t.requiresGrad = true;
    return t;
  };
  const outputs: Tensor[] = [matmul(leaf([17, 20]), leaf([20, 9]))];
  const x = leaf([2, 8, 16, 16]);
  for (const [w, stride, padding] of [
    [leaf([8, 8, 3, 3]), 1, 1], // forward_3x3, backward_weight_3x3
    [leaf([16, 8, 3, 3]), 2, 1], // backward_input_3x3_s2
    [leaf([6, 8, 5, 5]), 2, 2], // the general kernels (stride 2: backward_input too)
  ] as const) {
    const y = conv2d(x, w, null, { stride, padding });
    y.backward(Tensor.fromArray(randomArray(rng, y.size), y.shape));
    outputs.push(y, w.grad!);
  }
  outputs.push(x.grad!);
  return outputs;
}

describe('subgroup kernels built for another width than the device runs', () => {
  it('write NaN in every output of every entry point, and finite values when built for the device', async () => {
    const size = gpu().subgroupSize;
    if (size === 0) return expect(process.env.SFP_NO_SUBGROUPS).toBe('1');
    expect(matmulUsesSubgroups() && conv2dUsesSubgroups()).toBe(true);
    const built = vi.spyOn(gpu(), 'kernel');
    const wrong = await scopeAsync(() => readAll(withClaimedSubgroupSize(2 * size, scenario)));
    const entries = new Set(built.mock.calls.map(([spec]) => `${spec.family}.${spec.entry}`).filter((e) => e.includes('_subgroup.')));
    built.mockRestore();
    expect([...entries].sort()).toEqual([...ENTRIES].sort());
    wrong.forEach((values, i) => expect(values.every(Number.isNaN), `output ${i}: not all NaN`).toBe(true));
    const right = await scopeAsync(() => readAll(scenario()));
    right.forEach((values, i) => expect(values.every(Number.isFinite), `output ${i}: not all finite`).toBe(true));
  });
});
