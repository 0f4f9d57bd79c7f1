/** Float64 reference for src/ops/gather.ts: index_select along an axis and the residual join, as plain loops. */
import type { Shape } from '../../src/tensor/shape.js';

/** y = x.index_select(axis, index) for a row-major x of `shape`. */
export function indexSelect(x: ArrayLike<number>, shape: Shape, axis: number, index: ArrayLike<number>): Float64Array {
  const outer = shape.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const dim = shape[axis];
  const y = new Float64Array(outer * index.length * inner);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < index.length; i++) {
      for (let k = 0; k < inner; k++) y[(o * index.length + i) * inner + k] = x[(o * dim + index[i]) * inner + k];
    }
  }
  return y;
}

/**
 * out[n, c, oy, ox] = max(0, (yIndex[c] ≥ 0 ? y[n, yIndex[c], oy, ox] : 0)
 *                           + (rIndex[c] ≥ 0 ? r[n, rIndex[c], oy·s, ox·s] : 0) + constants[c]).
 */
export function residualJoin(
  y: ArrayLike<number>,
  yShape: Shape,
  r: ArrayLike<number>,
  rShape: Shape,
  yIndex: ArrayLike<number>,
  rIndex: ArrayLike<number>,
  constants: ArrayLike<number>,
  stride: number,
): Float64Array {
  const [batch, yChannels, h, w] = yShape;
  const [, rChannels, rH, rW] = rShape;
  const channels = constants.length;
  const out = new Float64Array(batch * channels * h * w);
  for (let n = 0; n < batch; n++) {
    for (let c = 0; c < channels; c++) {
      for (let oy = 0; oy < h; oy++) {
        for (let ox = 0; ox < w; ox++) {
          let v = constants[c];
          if (yIndex[c] >= 0) v += y[((n * yChannels + yIndex[c]) * h + oy) * w + ox];
          if (rIndex[c] >= 0) v += r[((n * rChannels + rIndex[c]) * rH + oy * stride) * rW + ox * stride];
          out[((n * channels + c) * h + oy) * w + ox] = Math.max(v, 0);
        }
      }
    }
  }
  return out;
}
