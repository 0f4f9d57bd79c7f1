/**
 * batchNorm2d over NCHW, training (batch statistics; running statistics updated in place with
 * PyTorch's momentum and unbiased variance) and evaluation (running statistics), optionally fused
 * with the ReLU that follows it. Backward gets Σdy and Σdy·x̂ per channel from one reduction pass
 * (shaders/batchnorm.wgsl). x̂ is recomputed from x in backward rather than stored, and so is the fused ReLU's
 * output, by the forward's own arithmetic, so the gradient passes exactly where the forward output is positive.
 */
import { defineOp } from '../autograd/function.js';
import { gpu, grid1d } from '../gpu/encoder.js';
import { Tensor } from '../tensor/tensor.js';

export interface BatchNormOptions {
  training: boolean;
  momentum?: number;
  eps?: number;
  /** Apply ReLU to the output in the same pass. */
  relu?: boolean;
}

const WG = 64;
/** Values per invocation in the elementwise passes (SEGMENT in batchnorm.wgsl). */
const SEGMENT = 16;
/** Elements of one channel summed by one invocation in the split reductions. */
const CHUNK_ELEMENTS = 4096;

interface Layout {
  batch: number;
  channels: number;
  hw: number;
  chunks: number;
  samplesPerChunk: number;
}

function layoutOf(x: Tensor): Layout {
  if (x.rank !== 4 && x.rank !== 2) throw new Error(`batchNorm2d: expected [batch, channels, h, w], got ${x.describe()}`);
  const [batch, channels] = x.shape;
  const hw = x.rank === 4 ? x.shape[2] * x.shape[3] : 1;
  return { batch, channels, hw, ...reductionChunks(batch, hw) };
}

/** How the split reductions cut a channel of `batch` planes of `hw` values: whole samples, at most CHUNK_ELEMENTS values per chunk. */
export function reductionChunks(batch: number, hw: number): { chunks: number; samplesPerChunk: number } {
  const samplesPerChunk = Math.max(1, Math.floor(CHUNK_ELEMENTS / hw));
  return { chunks: Math.ceil(batch / samplesPerChunk), samplesPerChunk };
}

function segments(l: Layout): number {
  return l.batch * l.channels * Math.ceil(l.hw / SEGMENT);
}

function params(l: Layout, extra: Record<string, number> = {}): Record<string, number> {
  return { batch: l.batch, channels: l.channels, hw: l.hw, chunks: l.chunks, samples_per_chunk: l.samplesPerChunk, ...extra };
}

/**
 * The kernel for `entry`: its _vec4 twin when every plane starts on a vec4 (hw a multiple of 4), with the
 * per-element buffers bound as vec4 arrays (x → x4 ...), which `buffers` renames to match.
 */
function run(
  l: Layout,
  entry: string,
  buffers: Record<string, GPUBuffer>,
  extra: Record<string, number>,
  workgroups: readonly [number, number?, number?],
  relu = false,
): void {
  const rt = gpu();
  const vec4 = l.hw % 4 === 0 && VEC4_ENTRIES.has(entry);
  const bound = vec4
    ? Object.fromEntries(Object.entries(buffers).map(([name, b]) => [PER_ELEMENT.has(name) ? `${name}4` : name, b]))
    : buffers;
  const kernel = rt.kernel({
    family: 'batchnorm',
    entry: vec4 ? `${entry}_vec4` : entry,
    bindings: ['dims', ...Object.keys(bound)],
    overrides: { RELU: Number(relu) },
  });
  rt.dispatch(kernel, bound, params(l, extra), workgroups);
}

const VEC4_ENTRIES = new Set(['stats_partial', 'normalize', 'backward_partial', 'backward_input']);
const PER_ELEMENT = new Set(['x', 'y', 'dy', 'dx']);

export const batchNorm2d = defineOp('batchNorm2d', {
  forward: (
    ctx,
    x: Tensor,
    gamma: Tensor,
    beta: Tensor,
    runningMean: Tensor,
    runningVar: Tensor,
    options: BatchNormOptions,
  ) => {
    const l = layoutOf(x);
    for (const [name, t] of [['weight', gamma], ['bias', beta], ['running_mean', runningMean], ['running_var', runningVar]] as const) {
      if (t.rank !== 1 || t.shape[0] !== l.channels) {
        throw new Error(`batchNorm2d: ${name} must have shape [${l.channels}] for input ${x.describe()}, got ${t.describe()}`);
      }
    }
    const eps = options.eps ?? 1e-5;
    const momentum = options.momentum ?? 0.1;
    const relu = options.relu ?? false;
    const stats = Tensor.empty([2, l.channels]);
    if (options.training) {
      if (l.batch * l.hw < 2) throw new Error(`batchNorm2d: training needs more than one value per channel, got ${x.describe()}`);
      const partial = Tensor.empty([l.channels, l.chunks, 2]);
      run(l, 'stats_partial', { x: x.buffer, partial: partial.buffer }, {}, [Math.ceil((l.channels * l.chunks) / WG)]);
      run(
        l,
        'stats_final',
        { x: x.buffer, partial: partial.buffer, stats: stats.buffer, running_mean: runningMean.buffer, running_var: runningVar.buffer },
        { eps, momentum, update_running: 1 },
        [Math.ceil(l.channels / WG)],
      );
      partial.dispose();
    } else {
      run(
        l,
        'eval_stats',
        { stats: stats.buffer, running_mean: runningMean.buffer, running_var: runningVar.buffer },
        { eps },
        [Math.ceil(l.channels / WG)],
      );
    }
    const y = Tensor.empty(x.shape);
    run(
      l,
      'normalize',
      { x: x.buffer, saved_stats: stats.buffer, gamma: gamma.buffer, beta: beta.buffer, y: y.buffer },
      {},
      grid1d(segments(l), WG),
      relu,
    );
    ctx.save(x, gamma, beta);
    ctx.own(stats);
    ctx.info.layout = l;
    ctx.info.relu = relu;
    ctx.info.training = options.training;
    return y;
  },
  backward: (ctx, dy) => {
    const [x, gamma, beta] = ctx.saved;
    const [stats] = ctx.ownedTensors;
    const l = ctx.info.layout as Layout;
    const relu = ctx.info.relu as boolean;
    const partial = Tensor.empty([l.channels, l.chunks, 2]);
    const dparams = Tensor.empty([2, l.channels]);
    const common = { x: x.buffer, saved_stats: stats.buffer, gamma: gamma.buffer, beta: beta.buffer, dy: dy.buffer };
    run(l, 'backward_partial', { ...common, partial: partial.buffer }, {}, [Math.ceil((l.channels * l.chunks) / WG)], relu);
    run(l, 'backward_final', { partial: partial.buffer, dparams: dparams.buffer }, {}, [Math.ceil(l.channels / WG)]);
    partial.dispose();
    let dx: Tensor | null = null;
    if (ctx.needsGrad[0]) {
      dx = Tensor.empty(x.shape);
      run(
        l,
        'backward_input',
        { ...common, dparams: dparams.buffer, dx: dx.buffer },
        { training: Number(ctx.info.training) },
        grid1d(segments(l), WG),
        relu,
      );
    }
    const dgamma = dparams.viewAs([2 * l.channels]);
    dparams.dispose();
    // dγ and dβ are the two halves of one buffer: copy them out so each is its own tensor.
    const dg = ctx.needsGrad[1] ? sliceCopy(dgamma, 0, l.channels) : null;
    const db = ctx.needsGrad[2] ? sliceCopy(dgamma, l.channels, l.channels) : null;
    dgamma.dispose();
    return [dx, dg, db, null, null];
  },
});

function sliceCopy(t: Tensor, start: number, length: number): Tensor {
  const out = Tensor.empty([length]);
  gpu().copy(t.buffer, start * 4, out.buffer, 0, length * 4);
  return out;
}
