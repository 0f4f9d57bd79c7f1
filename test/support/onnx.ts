/** A model's eval-mode logits on the host, and the same images through ONNX Runtime, for the export tests. */
import * as ort from 'onnxruntime-node';
import { noGrad } from '../../src/autograd/mode.js';
import { Tensor, scope } from '../../src/tensor/tensor.js';
import type { Module } from '../../src/nn/module.js';

/** `model.forward` of the images (no gradients), read back. */
export async function hostLogits(model: Module, images: Float32Array, shape: readonly number[]): Promise<Float32Array> {
  const logits = noGrad(() => scope(() => model.forward(Tensor.fromArray(images, shape))));
  try {
    return (await logits.toArray()) as Float32Array;
  } finally {
    logits.dispose();
  }
}

/** An ONNX model (bytes or a file) run by ONNX Runtime on `images` as input `images`: its `logits` and their dims. */
export async function onnxLogits(model: Uint8Array | string, images: Float32Array, shape: readonly number[]): Promise<{ data: Float32Array; dims: readonly number[] }> {
  const session = typeof model === 'string' ? await ort.InferenceSession.create(model) : await ort.InferenceSession.create(model);
  try {
    const result = await session.run({ images: new ort.Tensor('float32', images, [...shape]) });
    return { data: result.logits.data as Float32Array, dims: result.logits.dims };
  } finally {
    await session.release();
  }
}
