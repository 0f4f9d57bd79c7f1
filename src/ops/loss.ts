/**
 * Softmax cross-entropy fused in one kernel (stable: the row max is subtracted before exp), its
 * backward (softmax − onehot), argmax and the count of correct predictions (shaders/loss.wgsl).
 */
import { defineOp } from '../autograd/function.js';
import { gpu } from '../gpu/encoder.js';
import { Tensor } from '../tensor/tensor.js';
import { sum, mean } from './reduce.js';
import { noGrad } from '../autograd/mode.js';

const WG = 64;

function checkLogits(op: string, logits: Tensor, labels?: Tensor): [number, number] {
  if (logits.rank !== 2 || logits.dtype !== 'f32') throw new Error(`${op}: logits must be 2-D f32 [batch, classes], got ${logits.describe()}`);
  const [rows, classes] = logits.shape;
  if (labels) {
    if (labels.dtype !== 'u32' || labels.rank !== 1 || labels.shape[0] !== rows) {
      throw new Error(`${op}: labels must be u32 [${rows}], got ${labels.describe()}`);
    }
  }
  return [rows, classes];
}

/** Per-sample losses, with the softmax saved for backward. */
const softmaxCrossEntropyRows = defineOp('softmaxCrossEntropy', {
  forward: (ctx, logits: Tensor, labels: Tensor) => {
    const [rows, classes] = checkLogits('softmaxCrossEntropy', logits, labels);
    const probs = ctx.own(Tensor.empty([rows, classes]));
    const losses = Tensor.empty([rows]);
    const g = gpu();
    g.dispatch(
      g.kernel({ family: 'loss', entry: 'forward', bindings: ['dims', 'logits', 'labels', 'probs', 'losses'] }),
      { logits: logits.buffer, labels: labels.buffer, probs: probs.buffer, losses: losses.buffer },
      { rows, classes, scale: 1 },
      [Math.ceil(rows / WG)],
    );
    ctx.save(labels, probs);
    return losses;
  },
  backward: (ctx, dy) => {
    const [labels, probs] = ctx.saved;
    const [rows, classes] = probs.shape;
    const dx = Tensor.empty([rows, classes]);
    const g = gpu();
    g.dispatch(
      g.kernel({ family: 'loss', entry: 'backward', bindings: ['dims', 'labels', 'probs', 'dy', 'dx'] }),
      { labels: labels.buffer, probs: probs.buffer, dy: dy.buffer, dx: dx.buffer },
      { rows, classes, scale: 1 },
      [Math.ceil(rows / WG)],
    );
    return [dx, null];
  },
});

/** Mean (default) or summed cross-entropy of softmax(logits) against integer labels. */
export function softmaxCrossEntropy(logits: Tensor, labels: Tensor, reduction: 'mean' | 'sum' = 'mean'): Tensor {
  const rows = softmaxCrossEntropyRows(logits, labels);
  return reduction === 'mean' ? mean(rows) : sum(rows);
}

/** Index of the largest value in each row (u32). */
export function argmax(logits: Tensor): Tensor {
  const [rows, classes] = checkLogits('argmax', logits);
  const indices = Tensor.empty([rows], 'u32');
  const g = gpu();
  g.dispatch(
    g.kernel({ family: 'loss', entry: 'argmax', bindings: ['dims', 'logits', 'indices'] }),
    { logits: logits.buffer, indices: indices.buffer },
    { rows, classes, scale: 1 },
    [Math.ceil(rows / WG)],
  );
  return indices;
}

/** How many rows' argmax equals the label, as a one-element f32 tensor (stays on the GPU). */
export function correctCount(logits: Tensor, labels: Tensor): Tensor {
  const [rows, classes] = checkLogits('correctCount', logits, labels);
  return noGrad(() => {
    const hits = Tensor.empty([rows]);
    const g = gpu();
    g.dispatch(
      g.kernel({ family: 'loss', entry: 'correct', bindings: ['dims', 'logits', 'labels', 'hits'] }),
      { logits: logits.buffer, labels: labels.buffer, hits: hits.buffer },
      { rows, classes, scale: 1 },
      [Math.ceil(rows / WG)],
    );
    const count = sum(hits);
    hits.dispose();
    return count;
  });
}
