/** Tensors from host data and from the seeded generator (uniform, normal, Kaiming). */
import { Tensor, type DType } from './tensor.js';
import { numel, type Shape } from './shape.js';
import { Rng } from './random.js';

export function tensor(data: ArrayLike<number>, shape?: Shape, dtype: DType = 'f32'): Tensor {
  return Tensor.fromArray(data, shape ?? [data.length], dtype);
}

export function uniform(shape: Shape, rng: Rng, low = 0, high = 1): Tensor {
  const data = new Float32Array(numel(shape));
  for (let i = 0; i < data.length; i++) data[i] = low + (high - low) * rng.uniform();
  return Tensor.fromArray(data, shape);
}

export function normal(shape: Shape, rng: Rng, mean = 0, std = 1): Tensor {
  const data = new Float32Array(numel(shape));
  for (let i = 0; i < data.length; i++) data[i] = mean + std * rng.normal();
  return Tensor.fromArray(data, shape);
}

/** fan_in = shape[1]·(kernel area), fan_out = shape[0]·(kernel area), as PyTorch computes them. */
export function fans(shape: Shape): { fanIn: number; fanOut: number } {
  if (shape.length < 2) throw new Error(`fan in/out need a tensor of rank ≥ 2, got [${shape.join(', ')}]`);
  const receptive = numel(shape.slice(2));
  return { fanIn: shape[1] * receptive, fanOut: shape[0] * receptive };
}

/** Kaiming (He) normal init for ReLU networks: N(0, 2 / fan). */
export function kaimingNormal(shape: Shape, rng: Rng, mode: 'fanIn' | 'fanOut' = 'fanIn'): Tensor {
  const fan = fans(shape)[mode];
  return normal(shape, rng, 0, Math.sqrt(2 / fan));
}

export { Rng };
