// Kernels dispatched through grid1d fold their grid into two dimensions above 65,535 workgroups and recover
// the linear index from gid.y too. Tensors that large are slow here, so the fold limit is lowered to 1
// workgroup per row: every op family then runs folded on small tensors and must give the same bits as
// unfolded. The folded run goes first, so a missed element reads whatever the pooled buffer held before,
// not the value an unfolded run left there.
import { describe, expect, it, vi } from 'vitest';
import { gpu, withGridFoldLimit } from '../../src/gpu/encoder.js';
import type { KernelFamily } from '../../src/gpu/shaders.js';
import { add, exp, mul, relu } from '../../src/ops/elementwise.js';
import { sum } from '../../src/ops/reduce.js';
import { softmaxCrossEntropy } from '../../src/ops/loss.js';
import { avgPool2d, maxPool2d } from '../../src/ops/pool.js';
import { shortcutA } from '../../src/ops/shortcut.js';
import { batchNorm2d } from '../../src/ops/batchnorm.js';
import { indexSelect, residualJoin } from '../../src/ops/gather.js';
import { applyFilterMask, filterScores } from '../../src/ops/mask.js';
import { conv2d } from '../../src/ops/conv2d.js';
import { SGD } from '../../src/optim/sgd.js';
import { Tensor, scopeAsync } from '../../src/tensor/tensor.js';
import { Rng } from '../../src/tensor/random.js';
import { assertEqual, readAll } from '../support/allclose.js';
import { randomArray, seedFor } from '../support/random.js';

/** Every op family's forward and backward, an SGD step and the pruning kernels, on fixed random inputs. */
function scenario(): Tensor[] {
  const rng = new Rng(seedFor('folded grid'));
  const leaf = (shape: number[], low = -1, high = 1) => {
    const t = Tensor.fromArray(randomArray(rng, shape.reduce((a, b) => a * b), low, high), shape);
    t.requiresGrad = true;
    return t;
  };
  // 10×12 planes take the vec4 kernels, 9×9 the scalar ones.
  const x = leaf([2, 6, 10, 12]);
  const odd = leaf([2, 6, 9, 9]);
  const gamma = leaf([6], 0.5, 1.5);
  const beta = leaf([6]);
  const w = leaf([8, 6, 3, 3]);
  const stats = () => [Tensor.fromArray(new Float32Array(6), [6]), Tensor.fromArray(new Float32Array(6).fill(1), [6])];
  const outputs: Tensor[] = [];
  for (const input of [x, odd]) {
    const [mean, variance] = stats();
    outputs.push(
      shortcutA(input, 12, 2),
      avgPool2d(input, 3, { stride: 2, padding: 1 }),
      maxPool2d(input, 3, { stride: 2, padding: 1 }),
      batchNorm2d(input, gamma, beta, mean, variance, { training: true, relu: true }),
      indexSelect(input, 1, Tensor.fromArray(Uint32Array.of(5, 0, 5, 2), [4], 'u32')),
      conv2d(input, w, null, { stride: 1, padding: 1 }),
      relu(exp(mul(input, add(input, gamma.viewAs([1, 6, 1, 1]))))),
      mean,
      variance,
    );
  }
  const index = (stride: number) => ({
    yIndex: Tensor.fromArray(Int32Array.of(3, -1, 0, 3, 5), [5], 'i32'),
    rIndex: Tensor.fromArray(Int32Array.of(1, 4, -1, 1, 0), [5], 'i32'),
    constants: Tensor.fromArray(Float32Array.of(0.5, -0.25, 0, 1, -1), [5]),
    stride,
  });
  outputs.push(residualJoin(relu(x), x, index(1)), residualJoin(avgPool2d(x, 3, { stride: 2, padding: 1 }), x, index(2)));
  const logits = Tensor.fromArray(randomArray(rng, 700 * 10, -3, 3), [700, 10]);
  logits.requiresGrad = true;
  const labels = Tensor.fromArray(Uint32Array.from({ length: 700 }, () => rng.int(10)), [700], 'u32');
  outputs.push(softmaxCrossEntropy(logits, labels, 'sum'));
  // One loss over everything, each output weighted by its own random tensor so every gradient element differs.
  const loss = outputs
    .filter((o) => o.requiresGrad)
    .map((o) => sum(mul(o, Tensor.fromArray(randomArray(rng, o.size), o.shape))))
    .reduce((a, b) => add(a, b));
  loss.backward();
  const params = [x, odd, gamma, beta, w, logits];
  const grads = params.map((p) => p.grad!.viewAs(p.grad!.shape));
  new SGD(params, { lr: 0.1, momentum: 0.9, weightDecay: 5e-4, nesterov: true }).step();
  const scores = filterScores(w, 'l2');
  const fpgm = filterScores(w, 'fpgm');
  applyFilterMask(w, Tensor.fromArray(Uint32Array.of(1, 0, 1, 1, 0, 1, 1, 0), [8], 'u32'));
  return [...outputs, loss, ...grads, ...params, scores, fpgm];
}

/** The families whose kernels dispatch through grid1d, one shader file each: all must run folded. */
const GRID1D_FAMILIES: KernelFamily[] = ['batchnorm', 'conv2d', 'elementwise', 'gather', 'mask', 'optim', 'pool', 'reduce', 'shortcut'];

/** Runs the scenario and reads its tensors back, with the kernel families it dispatched on more than one row (grid[1] > 1). */
async function runScenario(record: () => Tensor[]) {
  const dispatches = vi.spyOn(gpu(), 'dispatch');
  try {
    const values = await scopeAsync(async () => readAll(record()));
    const rows = new Set(dispatches.mock.calls.filter(([, , , grid]) => (grid[1] ?? 1) > 1).map(([kernel]) => kernel.spec.family));
    return { values, rows };
  } finally {
    dispatches.mockRestore();
  }
}

describe('a grid folded into two dimensions', () => {
  it('gives every op family the bits it gives unfolded (one workgroup per row)', async () => {
    const folded = await runScenario(() => withGridFoldLimit(1, scenario));
    const plain = await runScenario(scenario);
    // Equal bits prove nothing unless the folded run really used a second grid dimension where the plain one did not.
    for (const family of GRID1D_FAMILIES) {
      expect(folded.rows.has(family), `${family} dispatched on a folded grid`).toBe(true);
      expect(plain.rows.has(family), `${family} dispatched on one row unfolded`).toBe(false);
    }
    plain.values.forEach((expected, i) => assertEqual(folded.values[i], expected, { label: `tensor ${i} of the scenario` }));
  });
});
