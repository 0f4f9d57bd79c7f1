/**
 * Float64 reference for src/ops/batchnorm.ts: batch normalisation over [N, C, H, W] (or [N, C]) as
 * PyTorch's BatchNorm2d / BatchNorm1d compute it, optionally followed by ReLU, and its backward.
 *
 * Training: mean_c and the biased variance var_c = Σ(x − mean_c)² / M (M = N·H·W) normalise x;
 * running_mean ← (1 − momentum)·running_mean + momentum·mean_c and
 * running_var  ← (1 − momentum)·running_var  + momentum·var_c·M / (M − 1) (the unbiased variance).
 * Evaluation: the running statistics normalise x and nothing is updated.
 * The backward is used by the float64 model (test/reference/resnet.ts); the op tests check the GPU's
 * backward against finite differences of batchNorm2d below, and this backward against the same.
 */
import type { Shape } from '../../src/tensor/shape.js';

export interface BatchNormReferenceOptions {
  training: boolean;
  momentum?: number;
  eps?: number;
  relu?: boolean;
}

export interface BatchNormReferenceResult {
  y: Float64Array;
  /** The running statistics after this call (copies; the inputs are not modified). */
  runningMean: Float64Array;
  runningVar: Float64Array;
  /** The statistics that normalised x: batch statistics in training, running ones in evaluation. */
  mean: Float64Array;
  invstd: Float64Array;
}

/** [N, C, H, W] or [N, C] → batch, channels and positions per channel and sample. */
export function bnLayout(shape: Shape): { batch: number; channels: number; hw: number } {
  if (shape.length !== 4 && shape.length !== 2) throw new Error(`batchNorm2d reference: rank 2 or 4, got [${shape.join(', ')}]`);
  return { batch: shape[0], channels: shape[1], hw: shape.length === 4 ? shape[2] * shape[3] : 1 };
}

export function batchNorm2d(
  x: ArrayLike<number>,
  shape: Shape,
  gamma: ArrayLike<number>,
  beta: ArrayLike<number>,
  runningMean: ArrayLike<number>,
  runningVar: ArrayLike<number>,
  options: BatchNormReferenceOptions,
): BatchNormReferenceResult {
  const { batch, channels, hw } = bnLayout(shape);
  const eps = options.eps ?? 1e-5;
  const momentum = options.momentum ?? 0.1;
  const m = batch * hw;
  const mean = new Float64Array(channels);
  const invstd = new Float64Array(channels);
  const newMean = Float64Array.from(runningMean);
  const newVar = Float64Array.from(runningVar);
  for (let c = 0; c < channels; c++) {
    if (options.training) {
      // Two passes: the mean first, then the squared deviations from it.
      let s = 0;
      for (let n = 0; n < batch; n++) for (let i = 0; i < hw; i++) s += x[(n * channels + c) * hw + i];
      const mu = s / m;
      let s2 = 0;
      for (let n = 0; n < batch; n++) {
        for (let i = 0; i < hw; i++) {
          const d = x[(n * channels + c) * hw + i] - mu;
          s2 += d * d;
        }
      }
      const variance = s2 / m;
      mean[c] = mu;
      invstd[c] = 1 / Math.sqrt(variance + eps);
      newMean[c] = (1 - momentum) * runningMean[c] + momentum * mu;
      newVar[c] = (1 - momentum) * runningVar[c] + momentum * (s2 / (m - 1));
    } else {
      mean[c] = runningMean[c];
      invstd[c] = 1 / Math.sqrt(runningVar[c] + eps);
    }
  }
  const y = new Float64Array(batch * channels * hw);
  for (let i = 0; i < y.length; i++) {
    const c = Math.floor(i / hw) % channels;
    const v = (x[i] - mean[c]) * invstd[c] * gamma[c] + beta[c];
    y[i] = options.relu && v < 0 ? 0 : v;
  }
  return { y, runningMean: newMean, runningVar: newVar, mean, invstd };
}

/**
 * Gradients of batchNorm2d from the statistics its forward used. With g = dy masked by the ReLU
 * (where the pre-activation is > 0) and x̂ = (x − mean)·invstd:
 *   dγ_c = Σ g·x̂,  dβ_c = Σ g,
 *   training:   dx = γ·invstd·(g − (dβ + x̂·dγ) / M)   (mean and variance depend on x)
 *   evaluation: dx = γ·invstd·g.
 */
export function batchNorm2dBackward(
  x: ArrayLike<number>,
  shape: Shape,
  gamma: ArrayLike<number>,
  beta: ArrayLike<number>,
  stats: { mean: ArrayLike<number>; invstd: ArrayLike<number> },
  dy: ArrayLike<number>,
  options: { training: boolean; relu?: boolean },
): { dx: Float64Array; dgamma: Float64Array; dbeta: Float64Array } {
  const { batch, channels, hw } = bnLayout(shape);
  const m = batch * hw;
  const xhat = new Float64Array(x.length);
  const g = new Float64Array(x.length);
  const dgamma = new Float64Array(channels);
  const dbeta = new Float64Array(channels);
  for (let i = 0; i < x.length; i++) {
    const c = Math.floor(i / hw) % channels;
    xhat[i] = (x[i] - stats.mean[c]) * stats.invstd[c];
    g[i] = options.relu && xhat[i] * gamma[c] + beta[c] <= 0 ? 0 : dy[i];
    dgamma[c] += g[i] * xhat[i];
    dbeta[c] += g[i];
  }
  const dx = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const c = Math.floor(i / hw) % channels;
    const scale = gamma[c] * stats.invstd[c];
    dx[i] = options.training ? scale * (g[i] - (dbeta[c] + xhat[i] * dgamma[c]) / m) : scale * g[i];
  }
  return { dx, dgamma, dbeta };
}
