/**
 * Seeded random inputs for tests: shapes that include awkward sizes, values, labels. Every random test
 * runs under withSeed(), which adds the seed to any failure so the case can be replayed. The base seed
 * is fixed (tests are deterministic) and can be changed with the SEED environment variable.
 */
import { Rng } from '../../src/tensor/random.js';

const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
export const BASE_SEED = Number(env?.SEED ?? 1234);

/** Sizes that catch off-by-one and tiling mistakes: 1, odd, primes, around the 32-wide tiles, 129. */
export const AWKWARD_SIZES = [1, 2, 3, 5, 17, 31, 32, 33, 64, 129] as const;

/** A seed for one named test, derived from the base seed (FNV-1a of the name). */
export function seedFor(name: string): number {
  let h = 0x811c9dc5 ^ BASE_SEED;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
  return h >>> 0;
}

/** Runs `fn` with a generator seeded from `name`; a failure's message gets the seed and how to replay it. */
export async function withSeed<T>(name: string, fn: (rng: Rng, seed: number) => T | Promise<T>): Promise<T> {
  const seed = seedFor(name);
  try {
    return await fn(new Rng(seed), seed);
  } catch (error) {
    if (error instanceof Error) error.message += `\n  [random test '${name}': seed ${seed}, replay with SEED=${BASE_SEED}]`;
    throw error;
  }
}

export function pick<T>(rng: Rng, list: readonly T[]): T {
  return list[rng.int(list.length)];
}

/** A shape of the given rank from `sizes`, redrawn until it has at most `maxNumel` elements. */
export function randomShape(rng: Rng, rank: number, maxNumel = 4096, sizes: readonly number[] = AWKWARD_SIZES): number[] {
  for (;;) {
    const shape = Array.from({ length: rank }, () => pick(rng, sizes));
    if (shape.reduce((n, d) => n * d, 1) <= maxNumel) return shape;
  }
}

/** Uniform float32 values in [low, high). */
export function randomArray(rng: Rng, n: number, low = -1, high = 1): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = low + (high - low) * rng.uniform();
  return out;
}

/** Values with |v| in [low, high) and a random sign: away from 0 (for div, or the kink of relu). */
export function randomAwayFromZero(rng: Rng, n: number, low = 0.1, high = 1): Float32Array {
  const out = randomArray(rng, n, low, high);
  for (let i = 0; i < n; i++) if (rng.uniform() < 0.5) out[i] = -out[i];
  return out;
}

/** Small integers in [low, high] as float32: products and sums of a few stay exact. */
export function randomInts(rng: Rng, n: number, low = -4, high = 4): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = low + rng.int(high - low + 1);
  return out;
}

export function randomLabels(rng: Rng, n: number, classes: number): Uint32Array {
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.int(classes);
  return out;
}
