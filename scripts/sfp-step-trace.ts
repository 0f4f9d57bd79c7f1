/**
 * A few SFP training steps with nothing random in them, for a step-by-step comparison with PyTorch
 * (scripts/torch-sfp-crosscheck.py --trace): from a checkpoint's weights, mask the floor(C_out·P)
 * smallest-L2 filters of every conv, then train on the first STEPS·128 training images in file order
 * (no augmentation, no shuffle) at a constant rate with Nesterov SGD, and save the weights, BN statistics
 * and momentum buffers as a checkpoint. Data: $CIFAR10_DIR, else ./data/cifar-10-batches-bin (as `train`).
 *
 * Usage: npx tsx scripts/sfp-step-trace.ts PRETRAINED OUT.safetensors [STEPS=20] [RATE=0.3] [LR=0.02]
 */
import { init, shutdown, gpu, CifarResNet, FilterPruner, SGD, Tensor, scope, softmaxCrossEntropy } from '../src/node.js';
import { loadCheckpoint, saveCheckpoint } from '../src/io/checkpoint-files.js';
import { loadCifar10 } from '../src/data/node-files.js';
import { normalizeImages } from '../src/data/loader.js';
import { IMAGE_BYTES, resolveDataDir } from '../src/data/cifar10.js';

const usage = 'usage: npx tsx scripts/sfp-step-trace.ts PRETRAINED OUT.safetensors [STEPS=20] [RATE=0.3] [LR=0.02]';
const [pretrained, out, stepsArg = '20', rateArg = '0.3', lrArg = '0.02'] = process.argv.slice(2);
const steps = Number(stepsArg);
const rate = Number(rateArg);
const lr = Number(lrArg);
const problem = !pretrained || !out ? 'PRETRAINED and OUT are required'
  : !(Number.isInteger(steps) && steps >= 1) ? `STEPS must be a whole number ≥ 1, got '${stepsArg}'`
  : !(rate > 0 && rate < 1) ? `RATE must be in (0, 1), got '${rateArg}'`
  : !(lr > 0) ? `LR must be > 0, got '${lrArg}'`
  : null;
if (problem) {
  console.error(`${problem}\n${usage}`);
  process.exit(2);
}
const batch = 128;

await init();
const model = new CifarResNet(20);
model.loadStateDict((await loadCheckpoint(pretrained)).model);
model.train();
const pruner = new FilterPruner(model, { rate });
pruner.apply(await pruner.computeMasks());
const optimizer = new SGD(model.parameters(), { lr, momentum: 0.9, weightDecay: 5e-4, nesterov: true });
const { dir, source } = resolveDataDir({ env: process.env });
const data = await loadCifar10(dir, 'train', source);
for (let step = 0; step < steps; step++) {
  const start = step * batch;
  const images = data.images.subarray(start * IMAGE_BYTES, (start + batch) * IMAGE_BYTES);
  const x = normalizeImages(images, batch);
  const y = Uint32Array.from(data.labels.subarray(start, start + batch));
  scope(() => {
    const loss = softmaxCrossEntropy(model.forward(Tensor.fromArray(x, [batch, 3, 32, 32])), Tensor.fromArray(y, [batch], 'u32'));
    loss.backward();
    optimizer.step();
    optimizer.zeroGrad();
  });
  // Waits for the GPU every step, so at most one step of uploads is queued (the trainer reads back every 20).
  await gpu().sync();
}
await saveCheckpoint(out, { model: model.stateDict(), optimizer: optimizer.velocityByName(model.namedParameters()), masks: pruner.masks!.byName(), meta: { steps, rate, lr } });
console.log(`wrote ${out} after ${steps} steps`);
shutdown();
