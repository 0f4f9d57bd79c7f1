/**
 * A few SFP training steps with nothing random in them, for a step-by-step comparison with PyTorch
 * (scripts/torch-sfp-crosscheck.py --trace): from a checkpoint's weights, mask the floor(C_out·P)
 * smallest-L2 filters of every conv, then train on the first STEPS·128 training images in file order
 * (no augmentation, no shuffle) at a constant rate with Nesterov SGD, and save the weights, BN statistics
 * and momentum buffers as a checkpoint.
 *
 * Usage: npx tsx scripts/sfp-step-trace.ts PRETRAINED OUT.safetensors [STEPS=20] [RATE=0.3] [LR=0.02]
 */
import { init, shutdown, gpu, CifarResNet, FilterPruner, SGD, Tensor, scope, softmaxCrossEntropy, checkpointToHost, encodeCheckpoint } from '../src/node.js';
import { loadCheckpoint } from '../src/io/checkpoint-files.js';
import { writeFileAtomic } from '../src/io/files.js';
import { loadCifar10 } from '../src/data/node-files.js';
import { normalizeImages } from '../src/data/loader.js';
import { IMAGE_BYTES } from '../src/data/cifar10.js';

const [pretrained, out, stepsArg = '20', rateArg = '0.3', lrArg = '0.02'] = process.argv.slice(2);
if (!pretrained || !out) {
  console.error('usage: npx tsx scripts/sfp-step-trace.ts PRETRAINED OUT.safetensors [STEPS=20] [RATE=0.3] [LR=0.02]');
  process.exit(2);
}
const steps = Number(stepsArg);
const batch = 128;

await init();
const model = new CifarResNet(20);
model.loadStateDict((await loadCheckpoint(pretrained)).model);
model.train();
const pruner = new FilterPruner(model, { rate: Number(rateArg) });
pruner.apply(await pruner.computeMasks());
const optimizer = new SGD(model.parameters(), { lr: Number(lrArg), momentum: 0.9, weightDecay: 5e-4, nesterov: true });
const data = await loadCifar10(process.env.CIFAR10_DIR ?? '../shared/data/cifar10', 'train');
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
  // As the trainer does between steps: wait for the GPU, so queued work (and what it holds) cannot pile up.
  await gpu().sync();
}
const names = new Map(model.namedParameters().map(([name, p]) => [p, name]));
const momentum = new Map([...optimizer.velocity].map(([p, v]) => [names.get(p)!, v]));
const host = await checkpointToHost({ model: model.stateDict(), optimizer: momentum, masks: new Map([...pruner.masks!.layers].map(([n, l]) => [n, l.mask])), meta: { steps } });
await writeFileAtomic(out, encodeCheckpoint(host, out));
console.log(`wrote ${out} after ${steps} steps`);
shutdown();
