/**
 * `demo`: a two-layer MLP learns a synthetic 3-class spiral on the GPU and prints its loss going down.
 * A quick check that the device, kernels, autograd and optimizer work together.
 */
import { Tensor, scope } from '../tensor/tensor.js';
import { Rng, normal } from '../tensor/create.js';
import { matmul } from '../ops/matmul.js';
import { add, relu, zeros } from '../ops/elementwise.js';
import { softmaxCrossEntropy, correctCount } from '../ops/loss.js';
import { SGD } from '../optim/sgd.js';
import { gpu } from '../gpu/encoder.js';

function spiral(points: number, classes: number, rng: Rng): { x: Float32Array; y: Uint32Array } {
  const x = new Float32Array(points * classes * 2);
  const y = new Uint32Array(points * classes);
  for (let c = 0; c < classes; c++) {
    for (let i = 0; i < points; i++) {
      const r = i / points;
      const t = c * 4 + r * 4 + rng.normal() * 0.2;
      const k = c * points + i;
      x[2 * k] = r * Math.sin(t);
      x[2 * k + 1] = r * Math.cos(t);
      y[k] = c;
    }
  }
  return { x, y };
}

export async function runDemo(steps = 300, log: (line: string) => void = console.log): Promise<number[]> {
  const rng = new Rng(7);
  const { x: xs, y: ys } = spiral(100, 3, rng);
  const n = ys.length;
  const hidden = 64;
  const w1 = normal([2, hidden], rng, 0, Math.sqrt(2 / 2)).keep();
  const b1 = zeros([hidden]).keep();
  const w2 = normal([hidden, 3], rng, 0, Math.sqrt(2 / hidden)).keep();
  const b2 = zeros([3]).keep();
  const params = [w1, b1, w2, b2];
  for (const p of params) p.requiresGrad = true;
  const x = Tensor.fromArray(xs, [n, 2]).keep();
  const y = Tensor.fromArray(ys, [n], 'u32').keep();
  const optimizer = new SGD(params, { lr: 0.5, momentum: 0.9 });
  const losses: number[] = [];
  log(`demo: MLP 2→${hidden}→3 on a ${n}-point spiral, ${gpu().adapterInfo.description || gpu().adapterInfo.vendor}`);
  for (let step = 1; step <= steps; step++) {
    const report = step === 1 || step % 50 === 0;
    const result = scope(() => {
      const logits = add(matmul(relu(add(matmul(x, w1), b1)), w2), b2);
      const loss = softmaxCrossEntropy(logits, y);
      loss.backward();
      optimizer.step();
      optimizer.zeroGrad();
      return report ? { loss, correct: correctCount(logits, y) } : null;
    });
    if (result) {
      const [loss, correct] = [await result.loss.item(), await result.correct.item()];
      result.loss.dispose();
      result.correct.dispose();
      losses.push(loss);
      log(`step ${String(step).padStart(4)}  loss ${loss.toFixed(4)}  accuracy ${((100 * correct) / n).toFixed(1)}%`);
    }
  }
  for (const t of [...params, ...optimizer.velocity.values(), x, y]) t.dispose();
  return losses;
}
