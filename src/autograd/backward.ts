/**
 * Reverse-mode differentiation from a scalar: an iterative topological sort (a ResNet-110 graph is
 * too deep for recursion), gradient accumulation with shape checks, and saved tensors freed as soon
 * as their node has run.
 */
import { adopt, Tensor } from '../tensor/tensor.js';
import { formatShape, sameShape } from '../tensor/shape.js';
import { add, accumulate_, clone, fill } from '../ops/elementwise.js';
import type { GradNode } from './node.js';
import { noGrad } from './mode.js';

export function backward(loss: Tensor, seed?: Tensor): void {
  if (!loss.requiresGrad) throw new Error(`backward(): ${loss.describe()} does not require grad (no parameter took part in it)`);
  if (!seed && loss.size !== 1) throw new Error(`backward() without a seed needs a scalar, got ${loss.describe()}`);
  const order = topologicalOrder(loss);
  noGrad(() => {
    const grads = new Map<Tensor, Tensor>();
    // A copy of the caller's seed: it may become a leaf's .grad (accumulated into in place) or be disposed as spent.
    grads.set(loss, seed ? clone(seed) : fill(loss.shape, 1));
    for (let i = order.length - 1; i >= 0; i--) {
      const node = order[i];
      const dy = grads.get(node.output);
      const ctx = node.ctx;
      if (!dy || !ctx) continue;
      grads.delete(node.output);
      const inputGrads = node.backwardFn(ctx, dy);
      if (inputGrads.length !== node.inputs.length) {
        throw new Error(`${node.name}.backward returned ${inputGrads.length} gradients for ${node.inputs.length} inputs`);
      }
      // Each stored gradient must be a distinct tensor. One an op hands to two inputs (add's dy) is shared
      // as a second view of the same storage; a leaf's .grad, accumulated into in place, gets a copy.
      const stored = new Set<Tensor>();
      const storedInLeaf = new Set<Tensor>();
      const spent: Tensor[] = [];
      node.inputs.forEach((input, k) => {
        let g = inputGrads[k];
        if (!g || !ctx.needsGrad[k]) return;
        if (!sameShape(g.shape, input.shape)) {
          throw new Error(`${node.name}.backward: gradient ${formatShape(g.shape)} for input ${k} of shape ${formatShape(input.shape)}`);
        }
        if (stored.has(g)) g = input.node && !storedInLeaf.has(g) ? g.viewAs(g.shape) : clone(g);
        stored.add(g);
        if (!input.node) storedInLeaf.add(g);
        if (input.node) {
          const previous = grads.get(input);
          if (previous) {
            grads.set(input, add(previous, g));
            spent.push(previous, g);
          } else {
            grads.set(input, g);
          }
        } else if (input.grad) {
          accumulate_(input.grad, g);
          spent.push(g);
        } else {
          // A leaf's .grad is added into in place by later contributions, so it owns its storage: a gradient
          // passed through unchanged may still be viewed by one another node has yet to use.
          if (g.sharesStorage) {
            spent.push(g);
            g = clone(g);
          }
          input.grad = input.kept ? adopt(g) : g;
        }
      });
      if (!stored.has(dy) && dy !== seed) spent.push(dy);
      for (const t of new Set(spent)) t.dispose();
      ctx.release();
      node.ctx = null;
    }
  });
}

function topologicalOrder(root: Tensor): GradNode[] {
  const order: GradNode[] = [];
  const visited = new Set<GradNode>();
  if (!root.node) return order;
  assertNotFreed(root.node, root);
  // Each stack entry is a node and the index of the next input to visit.
  const stack: [GradNode, number][] = [[root.node, 0]];
  visited.add(root.node);
  while (stack.length) {
    const top = stack[stack.length - 1];
    const [node, next] = top;
    if (next < node.inputs.length) {
      top[1]++;
      const child = node.inputs[next].node;
      if (child) assertNotFreed(child, node.inputs[next]);
      if (child && !visited.has(child)) {
        visited.add(child);
        stack.push([child, 0]);
      }
    } else {
      stack.pop();
      order.push(node);
    }
  }
  return order;
}

/** A node whose saved tensors an earlier backward() freed would silently contribute no gradient. */
function assertNotFreed(node: GradNode, output: Tensor): void {
  if (!node.ctx) {
    throw new Error(
      `backward(): ${node.name} (output ${output.describe()}) was already differentiated and its saved tensors freed; ` +
        'run the forward again to backpropagate a second time',
    );
  }
}
