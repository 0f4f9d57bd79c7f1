/**
 * Channel gathers for compaction (shaders/gather.wgsl):
 *  - `indexSelect(x, axis, index)`: torch.index_select, used to copy the kept filters, input channels and
 *    BN entries of a masked model into the smaller dense one. Its gradient scatters dy back (duplicates add).
 *  - `residualJoin(y, r, join)`: the end of a compacted ResNet block,
 *      out[:, c] = relu(y[:, yIndex[c]] + r[:, rIndex[c], ::s, ::s] + constants[c])   (index −1: no term),
 *    i.e. the official small model's `residual += bn_value; residual.index_add_(1, index, out); relu`, with
 *    the option-A shortcut's subsampling and zero channels folded in, written as a gather so that no two
 *    invocations write one element. Its gradient goes to y and r (not to the indices or constants).
 */
import { defineOp } from '../autograd/function.js';
import { Tensor } from '../tensor/tensor.js';
import { run1d } from './kernels.js';

function checkIndex(op: string, index: Tensor, dtype: 'u32' | 'i32', length?: number): void {
  if (index.dtype !== dtype || index.rank !== 1 || (length !== undefined && index.size !== length)) {
    throw new Error(`${op}: index must be ${dtype} [${length ?? 'k'}], got ${index.describe()}`);
  }
}

/** y = x.index_select(axis, index); `index` is u32 [k], every entry < x.shape[axis] (checked on the host by the caller). */
export const indexSelect = defineOp('indexSelect', {
  forward: (ctx, x: Tensor, axis: number, index: Tensor) => {
    if (x.dtype !== 'f32') throw new Error(`indexSelect: expected an f32 tensor, got ${x.describe()}`);
    if (!Number.isInteger(axis) || axis < 0 || axis >= x.rank) throw new Error(`indexSelect: axis ${axis} is out of range for ${x.describe()}`);
    checkIndex('indexSelect', index, 'u32');
    const outer = x.shape.slice(0, axis).reduce((a, b) => a * b, 1);
    const inner = x.shape.slice(axis + 1).reduce((a, b) => a * b, 1);
    const dims = { outer, dim: x.shape[axis], inner, count: index.size };
    const shape = [...x.shape];
    shape[axis] = index.size;
    const y = Tensor.empty(shape);
    run1d({ family: 'gather', entry: 'index_select', bindings: ['dims', 'x', 'index', 'y'] }, { x: x.buffer, index: index.buffer, y: y.buffer }, dims, y.size);
    ctx.save(index);
    ctx.info.dims = dims;
    ctx.info.shape = x.shape;
    return y;
  },
  backward: (ctx, dy) => {
    const [index] = ctx.saved;
    const dx = Tensor.empty(ctx.info.shape as number[]);
    run1d(
      { family: 'gather', entry: 'index_select_backward', bindings: ['dims', 'index', 'dy', 'dx'] },
      { index: index.buffer, dy: dy.buffer, dx: dx.buffer },
      ctx.info.dims as Record<string, number>,
      dx.size,
    );
    return [dx, null];
  },
});

/** Where each output channel of a residual join comes from: i32 indices (−1: none) and f32 constants, one per output channel. */
export interface ResidualJoinIndex {
  yIndex: Tensor;
  rIndex: Tensor;
  constants: Tensor;
  /** Subsampling of r (option-A shortcut): r is read at (oy·stride, ox·stride). */
  stride: number;
}

/** relu(y[:, yIndex] + r[:, rIndex, ::stride, ::stride] + constants), per output channel (see the file header). */
export function residualJoin(y: Tensor, r: Tensor, join: ResidualJoinIndex): Tensor {
  return residualJoinOp(y, r, join.yIndex, join.rIndex, join.constants, join.stride);
}

/** vec4s per invocation of residual_join_vec4 (JOIN_SEGMENT in gather.wgsl). */
const JOIN_SEGMENT = 4;

const residualJoinOp = defineOp('residualJoin', {
  forward: (ctx, y: Tensor, r: Tensor, yIndex: Tensor, rIndex: Tensor, constants: Tensor, stride: number) => {
    if (y.rank !== 4 || r.rank !== 4) throw new Error(`residualJoin: expected [batch, channels, h, w] tensors, got ${y.describe()} and ${r.describe()}`);
    const [batch, yChannels, h, w] = y.shape;
    const [rBatch, rChannels, rH, rW] = r.shape;
    const channels = constants.size;
    checkIndex('residualJoin', yIndex, 'i32', channels);
    checkIndex('residualJoin', rIndex, 'i32', channels);
    if (rBatch !== batch || Math.ceil(rH / stride) !== h || Math.ceil(rW / stride) !== w) {
      throw new Error(`residualJoin: residual ${r.describe()} subsampled by ${stride} does not match ${y.describe()}`);
    }
    const dims = { batch, out_channels: channels, h, w, y_channels: yChannels, r_channels: rChannels, r_h: rH, r_w: rW, stride };
    const out = Tensor.empty([batch, channels, h, w]);
    const indices = { y_index: yIndex.buffer, r_index: rIndex.buffer, constants: constants.buffer };
    // Stride 1 reads whole planes, so any plane of a multiple of 4 (14×14 too); stride 2 reads by rows.
    const vec4 = stride === 1 ? rH === h && rW === w && (h * w) % 4 === 0 : stride === 2 && rW === 2 * w && w % 4 === 0;
    if (vec4) {
      run1d(
        { family: 'gather', entry: 'residual_join_vec4', bindings: ['dims', 'x4', 'r4', 'y_index', 'r_index', 'constants', 'joined4'] },
        { x4: y.buffer, r4: r.buffer, ...indices, joined4: out.buffer },
        dims,
        batch * channels * Math.ceil((h * w) / 4 / JOIN_SEGMENT),
      );
    } else {
      run1d(
        { family: 'gather', entry: 'residual_join', bindings: ['dims', 'x', 'r', 'y_index', 'r_index', 'constants', 'joined'] },
        { x: y.buffer, r: r.buffer, ...indices, joined: out.buffer },
        dims,
        out.size,
      );
    }
    ctx.save(out, yIndex, rIndex);
    ctx.info.dims = dims;
    ctx.info.shapes = [y.shape, r.shape];
    return out;
  },
  backward: (ctx, dy) => {
    const [out, yIndex, rIndex] = ctx.saved;
    const dims = ctx.info.dims as Record<string, number>;
    const [yShape, rShape] = ctx.info.shapes as [number[], number[]];
    let dyIn: Tensor | null = null;
    let dr: Tensor | null = null;
    if (ctx.needsGrad[0]) {
      dyIn = Tensor.empty(yShape);
      run1d(
        { family: 'gather', entry: 'residual_join_backward_y', bindings: ['dims', 'dy', 'out', 'y_index', 'dx'] },
        { dy: dy.buffer, out: out.buffer, y_index: yIndex.buffer, dx: dyIn.buffer },
        dims,
        dyIn.size,
      );
    }
    if (ctx.needsGrad[1]) {
      dr = Tensor.empty(rShape);
      run1d(
        { family: 'gather', entry: 'residual_join_backward_r', bindings: ['dims', 'dy', 'out', 'r_index', 'dx'] },
        { dy: dy.buffer, out: out.buffer, r_index: rIndex.buffer, dx: dr.buffer },
        dims,
        dr.size,
      );
    }
    return [dyIn, dr, null, null, null];
  },
});
