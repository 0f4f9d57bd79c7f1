/**
 * BN recalibration: after masking, a BN layer's running statistics still describe the filters as they
 * were before they were zeroed, so the masked model is evaluated with stale statistics (a zeroed
 * filter's channel becomes its old mean, and every layer after it sees a narrower distribution than
 * its running variance says). Re-estimating the statistics from a few training batches, in training
 * mode and without gradients, fixes that without touching a weight. The estimate is the plain average
 * over the batches (PyTorch's momentum=None), so it does not depend on the old statistics at all.
 */
import type { Module } from '../nn/module.js';
import { BatchNorm2d } from '../nn/layers.js';
import { Tensor, scope } from '../tensor/tensor.js';
import { noGrad } from '../autograd/mode.js';
import { gpu } from '../gpu/encoder.js';
import type { BatchSource } from './trainer.js';

/** Re-estimates every BN layer's running statistics from the first `batches` batches of `source`. */
export function recalibrateBatchNorm(model: Module, source: BatchSource, batches: number): number {
  const norms = model.namedModules().flatMap(([, m]) => (m instanceof BatchNorm2d ? [m] : []));
  const momenta = norms.map((bn) => bn.options.momentum);
  const wasTraining = model.training;
  model.train();
  source.restart();
  const [c, h, w] = source.imageShape;
  // Reset first, as PyTorch's reset_running_stats: the first batch's weight of 1 would keep a NaN (0 · NaN).
  for (const bn of norms) {
    gpu().upload(bn.runningMean.buffer, new Float32Array(bn.runningMean.size));
    gpu().upload(bn.runningVar.buffer, new Float32Array(bn.runningVar.size).fill(1));
  }
  let seen = 0;
  try {
    for (const batch of source.batches()) {
      if (seen >= batches) break;
      // Batch k gets weight 1/(k+1): the running value is the mean over the batches so far.
      for (const bn of norms) bn.options.momentum = 1 / (seen + 1);
      noGrad(() => scope(() => void model.forward(Tensor.fromArray(batch.x, [batch.size, c, h, w]))));
      seen++;
    }
  } finally {
    norms.forEach((bn, i) => (bn.options.momentum = momenta[i]));
    model.train(wasTraining);
  }
  return seen;
}
