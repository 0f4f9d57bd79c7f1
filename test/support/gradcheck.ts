/**
 * Gradient check: the GPU's float32 backward against central finite differences of the float64
 * reference forward. With random upstream weights w, the scalar L(x) = Σ w ⊙ f(x) has
 * dL/dx_i = (L(x + h·e_i) − L(x − h·e_i)) / 2h + O(h²); in float64 with h = 1e-6 the difference
 * carries errors near 1e-10·|L|, far below float32's, so the tolerance measures the GPU alone.
 * It is scaled by the longest sum the backward computes (float32 rounding grows with it).
 */
import { Tensor, scopeAsync } from '../../src/tensor/tensor.js';
import { formatShape, sameShape, type Shape } from '../../src/tensor/shape.js';
import type { Rng } from '../../src/tensor/random.js';
import { assertClose, readAll } from './allclose.js';
import { randomArray } from './random.js';

export interface GradcheckInput {
  data: Float32Array | Uint32Array;
  shape: Shape;
  dtype?: 'f32' | 'u32';
  /** Default true for f32 inputs; u32 inputs (labels) never get a gradient. */
  requiresGrad?: boolean;
}

export interface GradcheckCase {
  label: string;
  inputs: GradcheckInput[];
  /** The op on the GPU, recorded for backward. */
  op: (...inputs: Tensor[]) => Tensor;
  /** The same function in float64 on flat arrays (shapes are known to the caller). */
  reference: (...inputs: Float64Array[]) => ArrayLike<number>;
  /**
   * The shape the op must return, from the caller's own shape arithmetic or the reference's returned
   * shape (never from the GPU output): a right count of values in the wrong shape fails.
   */
  outputShape: Shape;
  /** Longest sum in forward or backward (a matmul's k, a reduction's length, a broadcast's count). */
  reductionLength?: number;
  /** Extra slack for transcendental functions (exp, log), in multiples of the base tolerance. */
  slack?: number;
  seed?: number;
}

export const FINITE_DIFFERENCE_STEP = 1e-6;

/** atol and rtol for a float32 result whose longest sum has `length` terms of magnitude ≲ 1. */
export function tolerance(length = 1, slack = 1): { atol: number; rtol: number } {
  return { atol: slack * (1e-5 + 1e-6 * length), rtol: slack * 1e-4 };
}

/** Central differences of Σ w ⊙ f(x) with respect to input `which`, in float64. */
export function finiteDifferences(
  reference: GradcheckCase['reference'],
  inputs: Float64Array[],
  which: number,
  weights: ArrayLike<number>,
  h = FINITE_DIFFERENCE_STEP,
): Float64Array {
  const loss = (): number => {
    const y = reference(...inputs);
    let total = 0;
    for (let i = 0; i < y.length; i++) total += weights[i] * y[i];
    return total;
  };
  const x = inputs[which];
  const grad = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const saved = x[i];
    x[i] = saved + h;
    const plus = loss();
    x[i] = saved - h;
    const minus = loss();
    x[i] = saved;
    grad[i] = (plus - minus) / (2 * h);
  }
  return grad;
}

/**
 * Checks the forward against the reference and every input's gradient against finite differences.
 * One readback for everything; nothing stays alive afterwards.
 */
export async function gradcheck(c: GradcheckCase, rng: Rng): Promise<void> {
  const { atol, rtol } = tolerance(c.reductionLength, c.slack);
  const f64 = c.inputs.map((input) => Float64Array.from(input.data));
  const expectedY = c.reference(...f64.map((a) => a.slice()));
  const weights = randomArray(rng, expectedY.length, -1, 1);
  const differentiable = c.inputs.map((input) => (input.dtype ?? 'f32') === 'f32' && input.requiresGrad !== false);

  const [y, ...grads] = await scopeAsync(async () => {
    const tensors = c.inputs.map((input, i) => {
      const t = Tensor.fromArray(input.data, input.shape, input.dtype ?? 'f32');
      t.requiresGrad = differentiable[i];
      return t;
    });
    const out = c.op(...tensors);
    if (!sameShape(out.shape, c.outputShape)) {
      throw new Error(`${c.label}: the GPU op returned ${out.describe()}, expected shape ${formatShape(c.outputShape)}`);
    }
    if (out.size !== expectedY.length) {
      throw new Error(`${c.label}: the GPU op returned ${out.describe()}, the reference ${expectedY.length} values`);
    }
    out.backward(Tensor.fromArray(weights, out.shape));
    const missing = tensors.findIndex((t, i) => differentiable[i] && !t.grad);
    if (missing >= 0) throw new Error(`${c.label}: input ${missing} requires grad but got none`);
    const unexpected = tensors.findIndex((t, i) => !differentiable[i] && t.grad);
    if (unexpected >= 0) throw new Error(`${c.label}: input ${unexpected} does not require grad but got one`);
    return readAll([out, ...tensors.filter((_, i) => differentiable[i]).map((t) => t.grad as Tensor)]);
  });

  assertClose(y, expectedY, { atol, rtol, label: `${c.label} forward`, seed: c.seed });
  let g = 0;
  c.inputs.forEach((input, i) => {
    if (!differentiable[i]) return;
    const expected = finiteDifferences(c.reference, f64, i, weights);
    assertClose(grads[g++], expected, { atol, rtol, label: `${c.label} d/d(input ${i})`, seed: c.seed, shape: input.shape });
  });
}
