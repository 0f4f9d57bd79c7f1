/**
 * Comparing GPU results with a float64 reference: |actual − expected| ≤ atol + rtol·|expected|
 * elementwise, and on failure a message with the worst element (index, coordinates, both values,
 * absolute and relative error) and the seed that produced the inputs. NaN matches only NaN.
 */
import { gpu } from '../../src/gpu/encoder.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import type { Shape } from '../../src/tensor/shape.js';

export interface CloseOptions {
  atol?: number;
  rtol?: number;
  /** Names the comparison in the message. */
  label?: string;
  /** Seed of the generator that made the inputs, printed on failure. */
  seed?: number;
  /** Shape of the arrays, to print the worst element's coordinates. */
  shape?: Shape;
}

export interface Mismatch {
  count: number;
  index: number;
  actual: number;
  expected: number;
  absError: number;
  relError: number;
}

/** The elements outside tolerance (count) and the worst of them (largest excess over its tolerance), or null. */
export function findMismatch(actual: ArrayLike<number>, expected: ArrayLike<number>, atol: number, rtol: number): Mismatch | null {
  let count = 0;
  let worst: Mismatch | null = null;
  let worstExcess = -Infinity;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (Number.isNaN(a) && Number.isNaN(e)) continue;
    if (a === e) continue;
    const absError = Math.abs(a - e);
    const excess = Number.isNaN(absError) ? Infinity : absError - (atol + rtol * Math.abs(e));
    if (excess <= 0) continue;
    count++;
    if (excess > worstExcess) {
      worstExcess = excess;
      worst = { count: 0, index: i, actual: a, expected: e, absError, relError: absError / Math.abs(e) };
    }
  }
  return worst ? { ...worst, count } : null;
}

function coordinates(index: number, shape: Shape): string {
  const coords: number[] = [];
  for (let d = shape.length - 1; d >= 0; d--) {
    coords.unshift(index % shape[d]);
    index = Math.floor(index / shape[d]);
  }
  return `[${coords.join(', ')}]`;
}

/** Throws unless every element is within atol + rtol·|expected| (default: exact equality). */
export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, options: CloseOptions = {}): void {
  const { atol = 0, rtol = 0, label = 'values', seed, shape } = options;
  const where = `${label}${seed === undefined ? '' : ` (seed ${seed})`}`;
  if (actual.length !== expected.length) {
    throw new Error(`${where}: ${actual.length} values, expected ${expected.length}`);
  }
  const m = findMismatch(actual, expected, atol, rtol);
  if (!m) return;
  const at = shape ? ` ${coordinates(m.index, shape)} of [${shape.join(', ')}]` : '';
  throw new Error(
    `${where}: ${m.count} of ${expected.length} elements differ (atol ${atol}, rtol ${rtol}); ` +
      `worst at index ${m.index}${at}: actual ${m.actual}, expected ${m.expected}, ` +
      `abs error ${m.absError.toExponential(3)}, rel error ${m.relError.toExponential(3)}`,
  );
}

/** Exact equality, with the same report as assertClose. */
export function assertEqual(actual: ArrayLike<number>, expected: ArrayLike<number>, options: Omit<CloseOptions, 'atol' | 'rtol'> = {}): void {
  assertClose(actual, expected, { ...options, atol: 0, rtol: 0 });
}

/** Rounds each value to float32: what a correctly rounded f32 kernel must return for one exact operation. */
export function toF32(values: ArrayLike<number>): Float32Array {
  return Float32Array.from(values);
}

/** Reads many tensors back with a single submit and map (lavapipe makes each readback a full sync). */
export async function readAll(tensors: readonly Tensor[]): Promise<(Float32Array | Uint32Array | Int32Array)[]> {
  const buffers = await gpu().downloadMany(tensors.map((t) => ({ buffer: t.buffer, bytes: t.size * 4 })));
  return buffers.map((data, i) => {
    const dtype = tensors[i].dtype;
    return dtype === 'f32' ? new Float32Array(data) : dtype === 'u32' ? new Uint32Array(data) : new Int32Array(data);
  });
}
