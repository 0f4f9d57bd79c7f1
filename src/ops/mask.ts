/**
 * Per-filter criteria and in-place filter masking for pruning (shaders/mask.wgsl). Not differentiable:
 * pruning acts on the weights' data between steps, outside autograd.
 */
import { gpu, grid1d } from '../gpu/encoder.js';
import { Tensor } from '../tensor/tensor.js';

const WG = 64;

export type NormCriterion = 'l1' | 'l2' | 'fpgm';

function asFilters(weight: Tensor): [number, number] {
  if (weight.rank < 2) throw new Error(`filter criteria need a weight of rank ≥ 2, got ${weight.describe()}`);
  return [weight.shape[0], weight.size / weight.shape[0]];
}

/**
 * One score per filter: its L1 or L2 norm, or (FPGM) its summed L2 distance to every other filter.
 * Smaller scores are pruned first.
 */
export function filterScores(weight: Tensor, criterion: NormCriterion): Tensor {
  const [filters, filterSize] = asFilters(weight);
  const scores = Tensor.empty([filters]);
  const rt = gpu();
  const entry = criterion === 'fpgm' ? 'distance_sums' : 'filter_norms';
  rt.dispatch(
    rt.kernel({ family: 'mask', entry, bindings: ['dims', 'weight', 'norms'] }),
    { weight: weight.buffer, norms: scores.buffer },
    { filters, filter_size: filterSize, norm_p: criterion === 'l1' ? 1 : 2 },
    [Math.ceil(filters / WG)],
  );
  return scores;
}

/** Zeroes, in place, the filters of `target` whose entry in `mask` (u32, one per filter) is 0. */
export function applyFilterMask(target: Tensor, mask: Tensor): void {
  const [filters, filterSize] = asFilters(target);
  if (mask.dtype !== 'u32' || mask.size !== filters) throw new Error(`filter mask must be u32 [${filters}], got ${mask.describe()}`);
  const rt = gpu();
  rt.dispatch(
    rt.kernel({ family: 'mask', entry: 'apply_filter_mask', bindings: ['dims', 'mask', 'masked'] }),
    { mask: mask.buffer, masked: target.buffer },
    { filters, filter_size: filterSize, norm_p: 2 },
    grid1d(target.size, WG),
  );
}
