// The layers and models' parameter counts and initialisation (src/nn/layers.ts, src/models/resnet.ts):
// CIFAR ResNet-20/32/56/110 as in the SFP paper, ImageNet ResNet-18/34/50 as torchvision, and the SFP code's
// init (conv N(0, sqrt(2/(k·k·out))), BN γ = 1 and β = 0, Linear Kaiming-normal fan-in with bias 0).
import { describe, expect, it } from 'vitest';
import { CifarResNet, ImageNetResNet, cifarResNet } from '../../src/models/resnet.js';
import { BatchNorm2d, Conv2d, Linear, convBatchNorm } from '../../src/nn/layers.js';
import type { Module } from '../../src/nn/module.js';
import { noGrad } from '../../src/autograd/mode.js';
import { conv2dUsesSubgroups } from '../../src/ops/conv2d.js';
import { gpu } from '../../src/gpu/encoder.js';
import { Tensor, scope } from '../../src/tensor/tensor.js';
import { Rng } from '../../src/tensor/random.js';
import { assertEqual, readAll } from '../support/allclose.js';

function disposeModel(model: Module): void {
  for (const p of model.parameters()) p.dispose();
  for (const [, b] of model.namedBuffers()) b.dispose();
}

const count = (model: Module) => model.parameters().reduce((n, p) => n + p.size, 0);

describe('parameter counts', () => {
  it('CIFAR ResNet-20 has 269,722 parameters (0.27M), and each extra block per stage adds 97,216 (ResNet-32/56/110)', () => {
    // ResNet-20, n = 3 blocks per stage (BN has γ and β: 2 per channel; option-A shortcuts have none):
    //   conv1 3·16·9 = 432, bn1 2·16 = 32                                                     →     464
    //   layer1: 3 × (2 convs 16·16·9 = 2,304 + 2 BN 32)           = 3 × 4,672                 →  14,016
    //   layer2: block 0: 16·32·9 + 32·32·9 + 2·64 = 4,608 + 9,216 + 128 = 13,952
    //           blocks 1, 2: 2 × (2·9,216 + 128) = 2 × 18,560 = 37,120                        →  51,072
    //   layer3: block 0: 32·64·9 + 64·64·9 + 2·128 = 18,432 + 36,864 + 256 = 55,552
    //           blocks 1, 2: 2 × (2·36,864 + 256) = 2 × 73,984 = 147,968                       → 203,520
    //   fc 64·10 + 10                                                                         →     650
    //   total 464 + 14,016 + 51,072 + 203,520 + 650 = 269,722.
    // One more block in every stage: 4,672 + 18,560 + 73,984 = 97,216 (ResNet-32: n = 5, 56: 9, 110: 18).
    const expected = { resnet20: 269_722, resnet32: 464_154, resnet56: 853_018, resnet110: 1_727_962 } as const;
    const counted = new Map<string, number>();
    for (const [name, n] of Object.entries(expected) as [keyof typeof expected, number][]) {
      const model = cifarResNet(name);
      counted.set(name, count(model));
      expect(counted.get(name), name).toBe(n);
      disposeModel(model);
    }
    // Each block added to every stage adds the same 97,216 parameters.
    expect(counted.get('resnet32')! - counted.get('resnet20')!).toBe(2 * 97_216);
    expect(counted.get('resnet110')! - counted.get('resnet56')!).toBe(9 * 97_216);
  });

  it('ImageNet ResNet-18/34/50 with 1000 classes have torchvision’s 11,689,512 / 21,797,672 / 25,557,032 parameters', () => {
    const expected = { resnet18: 11_689_512, resnet34: 21_797_672, resnet50: 25_557_032 } as const;
    for (const [arch, n] of Object.entries(expected) as [keyof typeof expected, number][]) {
      const model = new ImageNetResNet(arch);
      expect(count(model), arch).toBe(n);
      disposeModel(model);
    }
  });

  it('a width-reduced CIFAR ResNet and a 100-class head count as the same formula predicts', () => {
    // widths 4/8/16, depth 8 (n = 1): conv1 3·4·9 + bn 8 = 116; layer1 2·4·4·9 + 16 = 304;
    // layer2 4·8·9 + 8·8·9 + 32 = 896; layer3 8·16·9 + 16·16·9 + 64 = 3,520; fc 16·100 + 100 = 1,700.
    const model = new CifarResNet(8, 100, 0, [4, 8, 16]);
    expect(count(model)).toBe(116 + 304 + 896 + 3_520 + 1_700);
    disposeModel(model);
    expect(() => new CifarResNet(21)).toThrow(/depth must be 6n\+2/);
  });
});

/** Sample mean and standard deviation. */
function moments(values: ArrayLike<number>): { mean: number; std: number } {
  let s = 0;
  for (let i = 0; i < values.length; i++) s += values[i];
  const mean = s / values.length;
  let s2 = 0;
  for (let i = 0; i < values.length; i++) s2 += (values[i] - mean) ** 2;
  return { mean, std: Math.sqrt(s2 / values.length) };
}

/**
 * Normal(0, σ) samples: the sample mean is within 5·σ/√n and the sample std within 5·σ/√(2n) of σ
 * (five standard errors: with 20 tensors the chance of a false failure is below 1e-5).
 */
function expectNormal(values: ArrayLike<number>, sigma: number, label: string): void {
  const { mean, std } = moments(values);
  const n = values.length;
  expect(Math.abs(mean), `${label} mean`).toBeLessThan((5 * sigma) / Math.sqrt(n));
  expect(Math.abs(std - sigma), `${label} std ${std} vs ${sigma}`).toBeLessThan((5 * sigma) / Math.sqrt(2 * n));
}

describe('initialisation (the SFP code’s models/resnet.py)', () => {
  it('every conv weight of a ResNet-20 is N(0, sqrt(2/(k·k·out))); BN γ = 1, β = 0, running stats 0 and 1; fc bias 0, fc weight N(0, sqrt(2/in))', async () => {
    const model = new CifarResNet(20, 10, 42);
    const convs = model.convs();
    expect(convs.map(([name]) => name)).toContain('layer3.2.conv2');
    expect(convs).toHaveLength(19);
    const bns = model.namedBuffers();
    const params = model.namedParameters();
    const values = await readAll([...params.map(([, p]) => p), ...bns.map(([, b]) => b)]);
    const byName = new Map([...params, ...bns].map(([name], i) => [name, values[i]]));
    for (const [name, conv] of convs) {
      const [out, , k] = conv.weight.shape;
      expectNormal(byName.get(`${name}.weight`)!, Math.sqrt(2 / (k * k * out)), name);
    }
    const bnNames = model.namedModules().filter(([, m]) => m instanceof BatchNorm2d).map(([name]) => name);
    expect(bnNames).toHaveLength(19);
    const all = (name: string, value: number) => expect([...byName.get(name)!].every((v) => v === value), `${name} all ${value}`).toBe(true);
    for (const name of bnNames) {
      all(`${name}.weight`, 1);
      all(`${name}.bias`, 0);
      all(`${name}.running_mean`, 0);
      all(`${name}.running_var`, 1);
    }
    all('fc.bias', 0);
    expectNormal(byName.get('fc.weight')!, Math.sqrt(2 / 64), 'fc.weight');
    expect(model.bn1.numBatchesTracked).toBe(0);
    disposeModel(model);
  });

  it('the same seed gives the same weights, another seed other weights; standalone layers follow the same rules', async () => {
    const a = new CifarResNet(8, 10, 7, [4, 8, 16]);
    const b = new CifarResNet(8, 10, 7, [4, 8, 16]);
    const c = new CifarResNet(8, 10, 8, [4, 8, 16]);
    const conv = new Conv2d(8, 32, 3, { bias: true });
    const linear = new Linear(256, 20);
    const [wa, wb, wc, cw, cb, lw, lb] = await readAll([a.conv1.weight, b.conv1.weight, c.conv1.weight, conv.weight, conv.bias!, linear.weight, linear.bias!]);
    expect(wb).toEqual(wa);
    expect(wc).not.toEqual(wa);
    expectNormal(cw, Math.sqrt(2 / (9 * 32)), 'Conv2d(8, 32, 3)');
    expect([...cb].every((v) => v === 0)).toBe(true);
    expectNormal(lw, Math.sqrt(2 / 256), 'Linear(256, 20)');
    expect([...lb].every((v) => v === 0)).toBe(true);
    const noBias = new Conv2d(3, 4, 3);
    expect(noBias.bias).toBeNull();
    expect(noBias.namedParameters().map(([name]) => name)).toEqual(['weight']);
    [a, b, c, conv, linear, noBias].forEach(disposeModel);
  });
});

describe('convBatchNorm', () => {
  it('runs one fused pass in evaluation mode without gradients, the two modules otherwise, with the same values; the packed weights are reused until the weights are written', async () => {
    const rng = new Rng(7);
    const conv = new Conv2d(5, 11, 3, { padding: 1 }, rng);
    const bn = new BatchNorm2d(11, { relu: true });
    gpu().upload(bn.runningMean.buffer, Float32Array.from({ length: 11 }, () => rng.normal()));
    gpu().upload(bn.runningVar.buffer, Float32Array.from({ length: 11 }, () => 0.5 + rng.uniform()));
    const x = Tensor.fromArray(Float32Array.from({ length: 2 * 5 * 8 * 8 }, () => rng.normal()), [2, 5, 8, 8]).keep();
    const dispatches = (fn: () => Tensor): [Tensor, number] => {
      const before = gpu().stats().dispatches;
      const y = scope(() => fn().keep());
      return [y, gpu().stats().dispatches - before];
    };
    bn.eval();
    const [fused, fusedCount] = dispatches(() => noGrad(() => convBatchNorm(conv, bn, x)));
    const [separate, separateCount] = dispatches(() => noGrad(() => bn.forward(conv.forward(x))));
    const [withGrad, withGradCount] = dispatches(() => convBatchNorm(conv, bn, x));
    // Weight packing and the conv (+ BN) pass, against BN's statistics and normalize passes besides.
    expect(fusedCount).toBe(conv2dUsesSubgroups() ? 2 : separateCount);
    expect(withGradCount).toBe(separateCount);
    const [a, b, c] = (await readAll([fused, separate, withGrad])) as Float32Array[];
    assertEqual(a, b, { label: 'fused vs two passes' });
    assertEqual(c, b, { label: 'with gradients vs two passes' });
    // Again: the packed weights are reused (one pass), until the weights are written; then they are packed anew.
    const [reused, reusedCount] = dispatches(() => noGrad(() => convBatchNorm(conv, bn, x)));
    expect(reusedCount).toBe(conv2dUsesSubgroups() ? 1 : separateCount);
    gpu().upload(conv.weight.buffer, Float32Array.from({ length: conv.weight.size }, () => rng.normal()));
    const [repacked, repackedCount] = dispatches(() => noGrad(() => convBatchNorm(conv, bn, x)));
    const [separateAfter] = dispatches(() => noGrad(() => bn.forward(conv.forward(x))));
    expect(repackedCount).toBe(fusedCount);
    const [d, e, f] = (await readAll([reused, repacked, separateAfter])) as Float32Array[];
    assertEqual(d, b, { label: 'reused packing vs two passes' });
    assertEqual(e, f, { label: 'after new weights: fused vs two passes' });
    expect(e).not.toEqual(d);
    for (const t of [fused, separate, withGrad, reused, repacked, separateAfter, x]) t.dispose();
    disposeModel(conv);
    disposeModel(bn);
  });
});
