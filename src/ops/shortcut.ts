/**
 * The option-A shortcut of the CIFAR ResNets (SFP's DownsampleA): x subsampled by `stride`, then zero
 * channels appended up to `outChannels` (torch.cat((x, x.mul(0)), 1) in the reference code). Its
 * gradient routes dy back to the sampled positions (shaders/shortcut.wgsl).
 */
import { defineOp } from '../autograd/function.js';
import { gpu, grid1d } from '../gpu/encoder.js';
import { Tensor } from '../tensor/tensor.js';

const WG = 256;

export const shortcutA = defineOp('shortcutA', {
  forward: (ctx, x: Tensor, outChannels: number, stride: number) => {
    if (x.rank !== 4) throw new Error(`shortcutA: expected [batch, channels, h, w], got ${x.describe()}`);
    const [batch, inChannels, inH, inW] = x.shape;
    if (outChannels < inChannels) throw new Error(`shortcutA: cannot narrow ${inChannels} channels to ${outChannels}`);
    const outH = Math.ceil(inH / stride);
    const outW = Math.ceil(inW / stride);
    const dims = { batch, in_channels: inChannels, out_channels: outChannels, in_h: inH, in_w: inW, out_h: outH, out_w: outW, stride };
    const y = Tensor.empty([batch, outChannels, outH, outW]);
    const rt = gpu();
    rt.dispatch(rt.kernel({ family: 'shortcut', entry: 'forward', bindings: ['dims', 'x', 'y'] }), { x: x.buffer, y: y.buffer }, dims, grid1d(y.size, WG));
    ctx.info.dims = dims;
    ctx.info.shape = x.shape;
    return y;
  },
  backward: (ctx, dy) => {
    const dx = Tensor.empty(ctx.info.shape as number[]);
    const rt = gpu();
    rt.dispatch(
      rt.kernel({ family: 'shortcut', entry: 'backward', bindings: ['dims', 'dy', 'dx'] }),
      { dy: dy.buffer, dx: dx.buffer },
      ctx.info.dims as Record<string, number>,
      grid1d(dx.size, WG),
    );
    return [dx];
  },
});
