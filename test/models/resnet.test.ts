// A whole CIFAR ResNet-20 (src/models/resnet.ts, full widths 16/32/64) on 2 images of 3×12×12 (stages at
// 12×12, 6×6 and 3×3: the option-A shortcut meets an odd size), forward and backward, against the float64
// model of test/reference/resnet.ts, which composes the op references. The reference backward is itself
// checked against finite differences of the reference forward.
//
// Errors reached (base seed 1234), as max |gpu − reference| / max |reference| per tensor: logits 1.1e-6
// (training) and 4.7e-7 (evaluation); parameter gradients ≤ 6.3e-6 (worst: layer3.1.bn1.weight; conv1.weight
// 2.8e-6, layer3.2.conv2.weight 5.6e-6, fc.weight 7.5e-7). The tolerances below (1e-5 and 1e-4 of the scale)
// leave about 10× headroom for float32 summation order, not for a different answer.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CifarResNet, cifarResNetShapeOf } from '../../src/models/resnet.js';
import { Tensor, scopeAsync } from '../../src/tensor/tensor.js';
import { addRelu } from '../../src/ops/elementwise.js';
import { shortcutA } from '../../src/ops/shortcut.js';
import type { Module } from '../../src/nn/module.js';
import * as ref from '../reference/resnet.js';
import { assertClose, readAll } from '../support/allclose.js';
import { randomArray, seedFor } from '../support/random.js';
import { Rng } from '../../src/tensor/random.js';
import { gpu } from '../../src/gpu/encoder.js';
import { noGrad } from '../../src/autograd/mode.js';

const CONFIG = { depth: 20, widths: [16, 32, 64], numClasses: 10 } as const;
const INPUT_SHAPE = [2, 3, 12, 12];
const SEED = seedFor('cifar resnet-20 vs reference');

/** The model's parameters and buffers as float64 host tensors, by state-dict name. */
async function hostState(model: Module): Promise<Map<string, ref.RefTensor>> {
  const entries = [...model.stateDict()].filter((e): e is [string, Tensor] => e[1] instanceof Tensor);
  const values = await readAll(entries.map(([, t]) => t));
  return new Map(entries.map(([name, t], i) => [name, { data: Float64Array.from(values[i]), shape: [...t.shape] }]));
}

function disposeModel(model: Module): void {
  for (const p of model.parameters()) {
    p.grad?.dispose();
    p.grad = null;
    p.dispose();
  }
  for (const [, b] of model.namedBuffers()) b.dispose();
}

/** |a − e| ≤ rel · max|e| elementwise: the error measured against the tensor's scale. */
function assertCloseToScale(actual: ArrayLike<number>, expected: ArrayLike<number>, rel: number, label: string, shape?: number[]): void {
  let scale = 0;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]));
  assertClose(actual, expected, { atol: rel * scale, rtol: 0, label: `${label} (scale ${scale.toExponential(2)})`, seed: SEED, shape });
}

describe('CIFAR ResNet-20 against the float64 reference model', () => {
  const rng = new Rng(SEED);
  const x = randomArray(rng, INPUT_SHAPE.reduce((a, b) => a * b), -2, 2);
  const dlogits = randomArray(rng, INPUT_SHAPE[0] * CONFIG.numClasses, -1, 1);
  let model: CifarResNet;
  let before: Map<string, ref.RefTensor>;
  let gpuLogits: Float32Array;
  let gpuGrads: Map<string, Float32Array>;
  let gpuBuffers: Map<string, Float32Array>;
  let run: ref.ReferenceRun;
  let refGrads: Map<string, Float64Array>;

  beforeAll(async () => {
    model = new CifarResNet(CONFIG.depth, CONFIG.numClasses, SEED, CONFIG.widths);
    before = await hostState(model);
    const params = model.namedParameters();
    const buffers = model.namedBuffers();
    const values = await scopeAsync(async () => {
      const logits = model.forward(Tensor.fromArray(x, INPUT_SHAPE));
      logits.backward(Tensor.fromArray(dlogits, logits.shape));
      return readAll([logits, ...params.map(([, p]) => p.grad!), ...buffers.map(([, b]) => b)]);
    });
    gpuLogits = values[0] as Float32Array;
    gpuGrads = new Map(params.map(([name], i) => [name, values[1 + i] as Float32Array]));
    gpuBuffers = new Map(buffers.map(([name], i) => [name, values[1 + params.length + i] as Float32Array]));
    run = ref.cifarResNet(before, CONFIG, { data: Float64Array.from(x), shape: INPUT_SHAPE }, true);
    refGrads = run.backward(dlogits);
  });

  afterAll(() => disposeModel(model));

  it('training-mode logits match (reached 1.1e-6 of their scale; tolerance 1e-5)', () => {
    assertCloseToScale(gpuLogits, run.logits.data, 1e-5, 'logits', run.logits.shape);
  });

  it('gradients of conv1.weight, layer3.2.conv2.weight, fc.weight, bn1.weight and every other parameter match (reached ≤ 6.3e-6 of each tensor’s scale; tolerance 1e-4)', () => {
    const named = ['conv1.weight', 'layer3.2.conv2.weight', 'fc.weight', 'fc.bias', 'bn1.weight', 'layer2.0.bn2.bias'];
    for (const name of named) expect(gpuGrads.has(name), name).toBe(true);
    expect(new Set(gpuGrads.keys())).toEqual(new Set(refGrads.keys()));
    for (const [name, expected] of refGrads) {
      assertCloseToScale(gpuGrads.get(name)!, expected, 1e-4, `d/d ${name}`, before.get(name)!.shape);
    }
  });

  it('the running statistics of every BN move as the reference says (momentum 0.1, unbiased variance)', () => {
    for (const [name, expected] of run.buffers) assertClose(gpuBuffers.get(name)!, expected, { atol: 1e-5, rtol: 1e-4, label: name, seed: SEED });
  });

  it('evaluation-mode logits (running statistics) match after the training forward moved them (reached 4.7e-7; tolerance 1e-5)', async () => {
    const state = await hostState(model);
    model.eval();
    const [logits] = await scopeAsync(async () => readAll([model.forward(Tensor.fromArray(x, INPUT_SHAPE))]));
    model.train();
    const expected = ref.cifarResNet(state, CONFIG, { data: Float64Array.from(x), shape: INPUT_SHAPE }, false);
    assertCloseToScale(logits, expected.logits.data, 1e-5, 'eval logits', expected.logits.shape);
  });

  it('the reference backward equals finite differences of the reference forward at sampled coordinates', () => {
    const h = 1e-6;
    const pick = new Rng(SEED + 1);
    const objective = (state: Map<string, ref.RefTensor>) =>
      ref.cifarResNet(state, CONFIG, { data: Float64Array.from(x), shape: INPUT_SHAPE }, true).logits.data.reduce((s, v, i) => s + v * dlogits[i], 0);
    for (const name of ['conv1.weight', 'layer3.2.conv2.weight', 'fc.weight', 'bn1.weight', 'layer2.0.bn2.bias']) {
      const param = before.get(name)!;
      const grad = refGrads.get(name)!;
      const scale = grad.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      for (let k = 0; k < 2; k++) {
        const i = pick.int(param.data.length);
        const saved = param.data[i];
        param.data[i] = saved + h;
        const plus = objective(before);
        param.data[i] = saved - h;
        const minus = objective(before);
        param.data[i] = saved;
        const fd = (plus - minus) / (2 * h);
        expect(Math.abs(fd - grad[i]), `${name}[${i}]: finite difference ${fd}, backward ${grad[i]}`).toBeLessThan(1e-6 * scale + 1e-8);
      }
    }
  });
});

describe('BasicBlock.join', () => {
  it('in inference, the strided gather-add of a downsampling block gives the bits of subsampling, zero-padding and adding in two passes', async () => {
    const model = new CifarResNet(20, 10, 4);
    const block = model.stages[1].blocks[0];
    expect(block.downsample).toEqual({ outChannels: 32, stride: 2 });
    const rng = new Rng(seedFor('block join'));
    await scopeAsync(async () => {
      const out = Tensor.fromArray(randomArray(rng, 3 * 32 * 16 * 16, -2, 2), [3, 32, 16, 16]);
      const x = Tensor.fromArray(randomArray(rng, 3 * 16 * 32 * 32, -2, 2), [3, 16, 32, 32]);
      model.eval();
      const fused = block.join(out, x);
      model.train();
      const separate = block.join(out, x);
      const expected = addRelu(out, shortcutA(x, 32, 2));
      const [a, b, c] = await readAll([fused, separate, expected]);
      expect([...a]).toEqual([...c]);
      expect([...b]).toEqual([...c]);
      expect(a.some((v) => v > 0) && a.some((v) => v === 0)).toBe(true);
    });
    for (const t of [...model.parameters(), ...model.namedBuffers().map(([, b]) => b)]) t.dispose();
  });

  it('an inference forward uploads nothing after its first, so it records without a submit (an upload submits what is recorded)', async () => {
    const model = new CifarResNet(20, 10, 4);
    model.eval();
    const rng = new Rng(seedFor('join uploads'));
    await scopeAsync(async () => {
      const x = Tensor.fromArray(randomArray(rng, 2 * 3 * 32 * 32, -2, 2), [2, 3, 32, 32]);
      const first = noGrad(() => model.forward(x));
      await readAll([first]);
      const submitsBefore = gpu().stats().submits;
      const second = noGrad(() => model.forward(x));
      expect(gpu().stats().submits).toBe(submitsBefore);
      const [a, b] = await readAll([first, second]);
      expect([...b]).toEqual([...a]);
    });
    for (const t of [...model.parameters(), ...model.namedBuffers().map(([, b]) => b)]) t.dispose();
  });
});

describe('cifarResNetShapeOf', () => {
  it('reads depth, stage widths and classes back from the state-dict shapes alone (ResNet-32 at 8/24/40, 7 classes)', () => {
    const model = new CifarResNet(32, 7, 0, [8, 24, 40]);
    const shapes = new Map([...model.stateDict()].map(([name, t]) => [name, { shape: t.shape }]));
    expect(cifarResNetShapeOf(shapes, 'm.safetensors')).toEqual({ depth: 32, classes: 7, widths: [8, 24, 40] });
    disposeModel(model);
    shapes.delete('fc.weight');
    expect(() => cifarResNetShapeOf(shapes, 'm.safetensors')).toThrow('m.safetensors: no tensor "fc.weight"; is this a CIFAR ResNet checkpoint? (its first tensors: conv1.weight');
  });
});
