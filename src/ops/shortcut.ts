/**
 * The option-A shortcut of the CIFAR ResNets (SFP's DownsampleA): x subsampled by `stride`, then zero
 * channels appended up to `outChannels` (torch.cat((x, x.mul(0)), 1) in the reference code). Its
 * gradient routes dy back to the sampled positions (shaders/shortcut.wgsl).
 */
import { defineOp } from '../autograd/function.js';
import { gpu, grid1d } from '../gpu/encoder.js';
import { Tensor } from '../tensor/tensor.js';

const WG = 256;

interface ShortcutDims extends Record<string, number> {
  batch: number; in_channels: number; out_channels: number; in_h: number; in_w: number; out_h: number; out_w: number; stride: number;
}

/** Stride 2 over even sizes with rows of a multiple of 4 outputs: the vec4 kernels. */
function fitsVec4(d: ShortcutDims): boolean {
  return d.stride === 2 && d.in_h === 2 * d.out_h && d.in_w === 2 * d.out_w && d.out_w % 4 === 0;
}

export const shortcutA = defineOp('shortcutA', {
  forward: (ctx, x: Tensor, outChannels: number, stride: number) => {
    if (x.rank !== 4) throw new Error(`shortcutA: expected [batch, channels, h, w], got ${x.describe()}`);
    const [batch, inChannels, inH, inW] = x.shape;
    if (outChannels < inChannels) throw new Error(`shortcutA: cannot narrow ${inChannels} channels to ${outChannels}`);
    const outH = Math.ceil(inH / stride);
    const outW = Math.ceil(inW / stride);
    const dims: ShortcutDims = { batch, in_channels: inChannels, out_channels: outChannels, in_h: inH, in_w: inW, out_h: outH, out_w: outW, stride };
    const y = Tensor.empty([batch, outChannels, outH, outW]);
    const rt = gpu();
    if (fitsVec4(dims)) {
      const kernel = rt.kernel({ family: 'shortcut', entry: 'forward_s2_vec4', bindings: ['dims', 'x4', 'y4'] });
      rt.dispatch(kernel, { x4: x.buffer, y4: y.buffer }, dims, grid1d(y.size / 4, WG));
    } else {
      rt.dispatch(rt.kernel({ family: 'shortcut', entry: 'forward', bindings: ['dims', 'x', 'y'] }), { x: x.buffer, y: y.buffer }, dims, grid1d(y.size, WG));
    }
    ctx.info.dims = dims;
    ctx.info.shape = x.shape;
    return y;
  },
  backward: (ctx, dy) => {
    const dx = Tensor.empty(ctx.info.shape as number[]);
    const dims = ctx.info.dims as ShortcutDims;
    const rt = gpu();
    if (fitsVec4(dims)) {
      const kernel = rt.kernel({ family: 'shortcut', entry: 'backward_s2_vec4', bindings: ['dims', 'dy', 'dx4'] });
      rt.dispatch(kernel, { dy: dy.buffer, dx4: dx.buffer }, dims, grid1d(dx.size / 4, WG));
      return [dx];
    }
    rt.dispatch(
      rt.kernel({ family: 'shortcut', entry: 'backward', bindings: ['dims', 'dy', 'dx'] }),
      { dy: dy.buffer, dx: dx.buffer },
      dims,
      grid1d(dx.size, WG),
    );
    return [dx];
  },
});
