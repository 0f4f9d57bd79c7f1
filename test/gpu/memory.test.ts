// Memory stays flat across training steps (style guide §2.6, principle 9): a small MLP trained for
// 1,000 steps, each inside scope(), leaves the pool's live bytes, live buffers, createBuffer and
// createBindGroup counts exactly where they were after the first few steps, and the loss goes down
// meanwhile. The pool hands buffers out in an order that makes that possible, and work queued far
// ahead of the GPU does not pile up bind groups.
import { expect, it } from 'vitest';
import { accumulate_, add, fill, relu, zeros } from '../../src/ops/elementwise.js';
import { BufferPool } from '../../src/gpu/pool.js';
import { gpu } from '../../src/gpu/encoder.js';
import { readAll } from '../support/allclose.js';
import { matmul } from '../../src/ops/matmul.js';
import { softmaxCrossEntropy } from '../../src/ops/loss.js';
import { SGD } from '../../src/optim/sgd.js';
import { Tensor, scope } from '../../src/tensor/tensor.js';
import { normal, tensor } from '../../src/tensor/create.js';
import { Rng } from '../../src/tensor/random.js';
import { memorySnapshot, type MemorySnapshot } from '../support/memory.js';
import { randomArray, randomLabels, seedFor } from '../support/random.js';

it('1,000 training steps of a 2-layer MLP (matmul, add, relu, cross-entropy, SGD with momentum) leave memory flat', async () => {
  const seed = seedFor('memory mlp');
  const rng = new Rng(seed);
  const [batch, inputs, hidden, classes] = [32, 20, 33, 10];
  const param = (shape: number[], std: number) => {
    const p = normal(shape, rng, 0, std).keep();
    p.requiresGrad = true;
    return p;
  };
  const w1 = param([inputs, hidden], Math.sqrt(2 / inputs));
  const b1 = param([hidden], 0.01);
  const w2 = param([hidden, classes], Math.sqrt(2 / hidden));
  const b2 = param([classes], 0.01);
  const optimizer = new SGD([w1, b1, w2, b2], { lr: 0.05, momentum: 0.9, weightDecay: 5e-4 });
  // Four fixed batches on the host, uploaded each step as a data loader would.
  const batches = Array.from({ length: 4 }, () => ({ x: randomArray(rng, batch * inputs), y: randomLabels(rng, batch, classes) }));

  const step = (i: number): Tensor =>
    scope(() => {
      const { x, y } = batches[i % batches.length];
      optimizer.zeroGrad();
      const h = relu(add(matmul(tensor(x, [batch, inputs]), w1), b1));
      const logits = add(matmul(h, w2), b2);
      const loss = softmaxCrossEntropy(logits, tensor(y, [batch], 'u32'));
      loss.backward();
      optimizer.step();
      return loss;
    });

  const losses: number[] = [];
  let warm: MemorySnapshot | null = null;
  for (let i = 0; i < 1000; i++) {
    const loss = step(i);
    // Read back rarely: every readback waits for the GPU.
    if (i % 250 === 0 || i === 999) losses.push(await loss.item());
    loss.dispose();
    if (i === 4) warm = memorySnapshot();
  }
  const end = memorySnapshot();
  expect(end, `memory after step 5 vs after step 1000 (seed ${seed})`).toEqual(warm);
  // Parameters, gradients and momentum are all that stays live: 4 tensors × 3.
  expect(end.liveBuffers).toBe(12);
  // It did train: the loss on these four batches fell well below its starting value.
  expect(losses.at(-1)!, `losses ${losses.join(', ')}`).toBeLessThan(0.5 * losses[0]);
  for (const p of [w1, b1, w2, b2]) {
    p.grad?.dispose();
    optimizer.velocity.get(p)?.dispose();
    p.dispose();
  }
});

it('the pool hands out the oldest free buffer of a size class, whatever order the buffers were released in', () => {
  const pool = new BufferPool(gpu().device, 1 << 20);
  const [a, b, c] = [pool.acquire(1000), pool.acquire(1000), pool.acquire(1000)];
  pool.release(b);
  pool.release(c);
  pool.release(a);
  expect([pool.acquire(1000), pool.acquire(1000)]).toEqual([a, b]);
  pool.release(a);
  expect(pool.acquire(1000)).toBe(a);
  expect(pool.stats().allocations).toBe(3);
  pool.release(a);
  pool.release(b);
  pool.trim();
  expect(pool.stats()).toMatchObject({ liveBuffers: 0, pooledBuffers: 0 });
});

it('70,000 dispatches queued without waiting for the GPU reuse one bind group and all run, in order', async () => {
  // Lavapipe maps memory for every live bind group and a process may hold at most 65,530 mappings:
  // one bind group per dispatch crashed (SIGSEGV) a loop that queued 190 ResNet-20 steps.
  const total = zeros([4]).keep();
  const one = fill([4], 1).keep();
  const before = gpu().stats().bindGroups;
  for (let i = 0; i < 70_000; i++) accumulate_(total, one);
  expect(gpu().stats().bindGroups - before).toBeLessThanOrEqual(1);
  const [values] = await readAll([total]);
  expect(Array.from(values)).toEqual([70_000, 70_000, 70_000, 70_000]);
  total.dispose();
  one.dispose();
});

it('releasePooledMemory also frees the readback buffers that downloads keep, and later downloads still work', async () => {
  gpu().releasePooledMemory();
  const sizes = [1000, 70_000, 300_000];
  const tensors = sizes.map((n) => fill([n], 2).keep());
  await readAll(tensors);
  const kept = gpu().stats();
  // One readback buffer per size class stays for reuse: at least the bytes just read.
  expect(kept.stagingBuffers).toBe(sizes.length);
  expect(kept.stagingBytes).toBeGreaterThanOrEqual(4 * sizes.reduce((a, b) => a + b, 0));
  gpu().releasePooledMemory();
  expect(gpu().stats()).toMatchObject({ stagingBuffers: 0, stagingBytes: 0, pooledBuffers: 0 });
  const again = await readAll(tensors);
  expect(again.map((v) => v.every((x) => x === 2))).toEqual([true, true, true]);
  for (const t of tensors) t.dispose();
  gpu().releasePooledMemory();
});
