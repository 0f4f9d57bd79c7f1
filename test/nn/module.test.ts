// Module (src/nn/module.ts) on the CIFAR ResNet-20: state-dict names and order as PyTorch's, a
// loadStateDict round trip and its errors, and train/eval reaching every submodule.
import { afterAll, describe, expect, it } from 'vitest';
import { CifarResNet } from '../../src/models/resnet.js';
import { BatchNorm2d } from '../../src/nn/layers.js';
import type { HostTensor, Module } from '../../src/nn/module.js';
import { Tensor, scope, scopeAsync } from '../../src/tensor/tensor.js';
import { tensor } from '../../src/tensor/create.js';
import { readAll } from '../support/allclose.js';

/** The state dict on the host, as a checkpoint would hold it. */
async function hostStateDict(model: Module): Promise<Map<string, HostTensor>> {
  const entries = [...model.stateDict()];
  const tensors = entries.filter((e): e is [string, Tensor] => e[1] instanceof Tensor);
  const values = await readAll(tensors.map(([, t]) => t));
  const read = new Map(tensors.map(([name, t], i) => [name, { dtype: t.dtype, shape: [...t.shape], data: values[i] } as HostTensor]));
  return new Map(entries.map(([name, v]) => [name, read.get(name) ?? (v as HostTensor)]));
}

function disposeModel(model: Module): void {
  for (const p of model.parameters()) {
    p.grad?.dispose();
    p.grad = null;
    p.dispose();
  }
  for (const [, b] of model.namedBuffers()) b.dispose();
}

/** PyTorch's state_dict order for the CIFAR ResNet-20: module by module, parameters then buffers. */
function expectedResNet20Keys(): string[] {
  const bn = (p: string) => [`${p}.weight`, `${p}.bias`, `${p}.running_mean`, `${p}.running_var`, `${p}.num_batches_tracked`];
  const keys = ['conv1.weight', ...bn('bn1')];
  for (let stage = 1; stage <= 3; stage++) {
    for (let block = 0; block < 3; block++) {
      const p = `layer${stage}.${block}`;
      keys.push(`${p}.conv1.weight`, ...bn(`${p}.bn1`), `${p}.conv2.weight`, ...bn(`${p}.bn2`));
    }
  }
  keys.push('fc.weight', 'fc.bias');
  return keys;
}

describe('Module: the state dict of a CIFAR ResNet-20', () => {
  const models: Module[] = [];
  afterAll(() => models.forEach(disposeModel));
  const make = (seed: number) => {
    const m = new CifarResNet(20, 10, seed);
    models.push(m);
    return m;
  };

  it('names every parameter and buffer as PyTorch does, in state_dict order (116 keys)', () => {
    const model = make(0);
    const keys = [...model.stateDict().keys()];
    expect(keys.slice(0, 8)).toEqual([
      'conv1.weight',
      'bn1.weight',
      'bn1.bias',
      'bn1.running_mean',
      'bn1.running_var',
      'bn1.num_batches_tracked',
      'layer1.0.conv1.weight',
      'layer1.0.bn1.weight',
    ]);
    expect(keys.slice(-2)).toEqual(['fc.weight', 'fc.bias']);
    expect(keys).toEqual(expectedResNet20Keys());
    // Option-A shortcuts have no parameters: no `downsample` key anywhere. Their inference join indices are
    // buffers outside the state dict (PyTorch's persistent=False): listed as buffers, never saved or expected.
    expect(keys.some((k) => k.includes('downsample') || k.includes('shortcut'))).toBe(false);
    const shortcutBuffers = model.namedBuffers().map(([name]) => name).filter((name) => name.includes('shortcut'));
    expect(shortcutBuffers).toEqual(['layer2.0', 'layer3.0'].flatMap((b) => ['y_index', 'r_index', 'constants'].map((n) => `${b}.shortcut_${n}`)));
    // Parameters carry their names (for error messages).
    expect(model.fc.weight.name).toBe('fc.weight');
    expect(model.stages[2].blocks[2].conv2.weight.describe()).toBe('layer3.2.conv2.weight [64, 64, 3, 3] f32');
  });

  it('shapes are PyTorch’s: conv [out, in, 3, 3], BN vectors, num_batches_tracked a 0-d integer, fc [10, 64]', () => {
    const state = make(0).stateDict();
    const shape = (k: string) => [...state.get(k)!.shape];
    expect(shape('conv1.weight')).toEqual([16, 3, 3, 3]);
    expect(shape('layer2.0.conv1.weight')).toEqual([32, 16, 3, 3]);
    expect(shape('layer3.2.conv2.weight')).toEqual([64, 64, 3, 3]);
    expect(shape('layer3.0.bn2.running_var')).toEqual([64]);
    expect(shape('bn1.num_batches_tracked')).toEqual([]);
    expect(shape('fc.weight')).toEqual([10, 64]);
    expect(shape('fc.bias')).toEqual([10]);
  });

  it('loadStateDict copies every value, num_batches_tracked included: the state read back equals the source', async () => {
    const source = make(1);
    source.bn1.numBatchesTracked = 7;
    const target = make(2);
    const state = await hostStateDict(source);
    target.loadStateDict(state);
    const after = await hostStateDict(target);
    expect([...after.keys()]).toEqual([...state.keys()]);
    for (const [name, value] of state) expect(after.get(name)!.data, name).toEqual(value.data);
    expect(target.bn1.numBatchesTracked).toBe(7);
  });

  it('loadStateDict (strict) lists missing and unexpected keys; a shape mismatch names the key and both shapes', async () => {
    const model = make(3);
    const state = await hostStateDict(model);
    const missing = new Map(state);
    missing.delete('fc.bias');
    missing.delete('layer2.1.bn1.running_var');
    expect(() => model.loadStateDict(missing)).toThrow(/keys do not match the model\n {2}missing: layer2\.1\.bn1\.running_var, fc\.bias$/);
    const unexpected = new Map(state);
    unexpected.set('layer4.0.conv1.weight', { dtype: 'f32', shape: [1], data: new Float32Array(1) });
    expect(() => model.loadStateDict(unexpected)).toThrow(/\n {2}unexpected: layer4\.0\.conv1\.weight$/);
    const both = new Map(missing);
    both.set('classifier.weight', { dtype: 'f32', shape: [1], data: new Float32Array(1) });
    expect(() => model.loadStateDict(both)).toThrow(/missing: layer2\.1\.bn1\.running_var, fc\.bias\n {2}unexpected: classifier\.weight/);
    const wrongShape = new Map(state);
    wrongShape.set('fc.weight', { dtype: 'f32', shape: [100, 64], data: new Float32Array(6400) });
    expect(() => model.loadStateDict(wrongShape)).toThrow('loadStateDict: fc.weight has shape [100, 64] in the state, [10, 64] in the model');
  });

  it("loadStateDict names eight keys of a long list and counts the rest (another model's state)", async () => {
    const model = make(3);
    const state = await hostStateDict(model);
    const fewer = new Map([...state].filter(([k]) => !k.startsWith('layer3.')));
    // BN's num_batches_tracked may be missing (it keeps its value, as in PyTorch), so it is not listed.
    const missing = [...state.keys()].filter((k) => k.startsWith('layer3.') && !k.endsWith('.num_batches_tracked'));
    expect(missing.length).toBeGreaterThan(8);
    const listed = `${missing.slice(0, 8).join(', ')} and ${missing.length - 8} more (${missing.length} in all)`;
    expect(() => model.loadStateDict(fewer)).toThrow(`keys do not match the model\n  missing: ${listed}`);
  });

  it('loadStateDict(state, strict = false) loads the keys that match and ignores the rest', async () => {
    const source = make(4);
    const target = make(5);
    const state = await hostStateDict(source);
    const partial = new Map([...state].filter(([k]) => k.startsWith('fc.')));
    partial.set('extra.weight', { dtype: 'f32', shape: [1], data: new Float32Array(1) });
    target.loadStateDict(partial, false);
    const [fcW, conv1W] = await readAll([target.fc.weight, target.conv1.weight]);
    expect(fcW).toEqual(state.get('fc.weight')!.data);
    expect(conv1W).not.toEqual(state.get('conv1.weight')!.data);
  });

  it('train() and eval() reach every submodule; BN updates running statistics and num_batches_tracked only in training', async () => {
    const model = make(6);
    model.eval();
    for (const [name, m] of model.namedModules()) expect(m.training, name || '(root)').toBe(false);
    model.train();
    for (const [name, m] of model.namedModules()) expect(m.training, name || '(root)').toBe(true);
    expect(model.train(false).training).toBe(false);
    model.train();

    const bn = new BatchNorm2d(2);
    models.push(bn);
    const x = [1, 3, 10, 30, 5, 7, 50, 70];
    const [trained] = await scopeAsync(async () => {
      bn.forward(tensor(x, [2, 2, 1, 2]));
      return readAll([bn.runningMean]);
    });
    expect(bn.numBatchesTracked).toBe(1);
    // Channel 0 holds 1, 3, 5, 7 (mean 4); channel 1 holds 10, 30, 50, 70 (mean 40): running_mean = 0.1·mean.
    expect([...trained].map((v) => +v.toFixed(5))).toEqual([0.4, 4]);
    bn.eval();
    const [evaluated] = await scopeAsync(async () => {
      scope(() => bn.forward(tensor(x, [2, 2, 1, 2])));
      return readAll([bn.runningMean]);
    });
    expect(bn.numBatchesTracked).toBe(1);
    expect(evaluated).toEqual(trained);
  });
});
