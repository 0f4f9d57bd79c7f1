/**
 * Float64 reference for src/ops/shortcut.ts, written the way the SFP code writes DownsampleA:
 *   x = nn.AvgPool2d(kernel_size=1, stride=stride)(x); return torch.cat((x, x.mul(0)), 1)
 * generalised to any number of appended zero channels (outChannels ≥ inChannels).
 */
import type { Shape } from '../../src/tensor/shape.js';
import { avgPool2d, poolGeometry } from './pool.js';

export function shortcutA(x: ArrayLike<number>, shape: Shape, outChannels: number, stride: number): { data: Float64Array; shape: number[] } {
  const [batch, channels] = shape;
  const g = poolGeometry(shape, 1, stride, 0);
  // A 1×1 average pool with stride s keeps every s-th row and column.
  const pooled = avgPool2d(x, shape, 1, stride, 0);
  const plane = g.outH * g.outW;
  const data = new Float64Array(batch * outChannels * plane);
  for (let n = 0; n < batch; n++) {
    for (let c = 0; c < channels; c++) {
      for (let p = 0; p < plane; p++) data[(n * outChannels + c) * plane + p] = pooled[(n * channels + c) * plane + p];
    }
  }
  return { data, shape: [batch, outChannels, g.outH, g.outW] };
}

/** dx: dy of the kept channels, routed back to the sampled positions (zero elsewhere). */
export function shortcutABackward(dy: ArrayLike<number>, shape: Shape, outChannels: number, stride: number): Float64Array {
  const [batch, channels, h, w] = shape;
  const g = poolGeometry(shape, 1, stride, 0);
  const dx = new Float64Array(batch * channels * h * w);
  for (let n = 0; n < batch; n++) {
    for (let c = 0; c < channels; c++) {
      for (let oy = 0; oy < g.outH; oy++) {
        for (let ox = 0; ox < g.outW; ox++) {
          dx[((n * channels + c) * h + oy * stride) * w + ox * stride] = dy[((n * outChannels + c) * g.outH + oy) * g.outW + ox];
        }
      }
    }
  }
  return dx;
}
