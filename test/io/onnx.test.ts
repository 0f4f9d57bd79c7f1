// ONNX export: the exported CIFAR ResNet, run by ONNX Runtime, gives our eval-mode logits.
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import * as ort from 'onnxruntime-node';
import { CifarResNet } from '../../src/models/resnet.js';
import { exportCifarResNet, ModelProto, OnnxGraph } from '../../src/io/onnx.js';
import { Rng } from '../../src/tensor/random.js';
import { hostLogits, onnxLogits } from '../support/onnx.js';
import { gpu } from '../../src/gpu/encoder.js';
import { assertClose } from '../support/allclose.js';

/** Random BN statistics and affine parameters, so eval mode is not the identity. */
function perturbBatchNorm(model: CifarResNet, rng: Rng): void {
  for (const [name, t] of [...model.namedParameters(), ...model.namedBuffers()]) {
    if (!/bn\d?\.|\.bn\d/.test(name) && !name.startsWith('bn')) continue;
    const data = Float32Array.from({ length: t.size }, () =>
      name.endsWith('running_var') ? 0.5 + rng.uniform() : name.endsWith('weight') ? 0.5 + rng.uniform() : 0.3 * rng.normal(),
    );
    gpu().upload(t.buffer, data);
  }
}

describe('ONNX export', () => {
  it('ONNX Runtime reproduces the eval-mode logits of a CIFAR ResNet-20 (max |Δ| < 1e-4)', async () => {
    const rng = new Rng(11);
    const model = new CifarResNet(20, 10, 3);
    perturbBatchNorm(model, rng);
    model.eval();
    const batch = 3;
    const images = Float32Array.from({ length: batch * 3 * 32 * 32 }, () => rng.normal());
    const ours = await hostLogits(model, images, [batch, 3, 32, 32]);
    const bytes = await exportCifarResNet(model);
    const session = await ort.InferenceSession.create(bytes);
    expect(session.inputNames).toEqual(['images']);
    expect(session.outputNames).toEqual(['logits']);
    await session.release();
    const { data: theirs, dims } = await onnxLogits(bytes, images, [batch, 3, 32, 32]);
    expect(dims).toEqual([batch, 10]);
    assertClose(theirs, ours, { atol: 1e-4, rtol: 1e-4, label: 'onnxruntime vs sfp-gpu logits' });
    expect(Math.max(...ours.map(Math.abs))).toBeGreaterThan(0.1);
    // The batch dimension is symbolic: the same file runs one image, and gives that image's logits.
    const one = await onnxLogits(bytes, images.subarray(0, 3 * 32 * 32), [1, 3, 32, 32]);
    expect(one.dims).toEqual([1, 10]);
    assertClose(one.data, ours.subarray(0, 10), { atol: 1e-4, rtol: 1e-4, label: 'onnxruntime batch 1 vs sfp-gpu' });
    // The producer fields name the package as package.json does.
    const written = ModelProto.decode(bytes) as unknown as { producerName: string; producerVersion: string };
    const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { name: string; version: string };
    expect([written.producerName, written.producerVersion]).toEqual([pkg.name, pkg.version]);
  });

  it('refuses an initializer whose values do not fill its dims, naming it', () => {
    expect(() => new OnnxGraph('g').floats('fc.weight', new Float32Array(6), [2, 4])).toThrow('ONNX export: initializer fc.weight holds 6 values, but its dims [2, 4] need 8');
  });
});
