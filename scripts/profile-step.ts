/**
 * Where a training step's GPU time goes: runs SGD steps of a CIFAR ResNet on random images, then times
 * STEPS more with a timestamp pair around every dispatch (gpu().startProfiling(), which needs the
 * timestamp-query feature) and prints one row per kernel, or per kernel and shape with --by-shape: dispatches
 * per step, milliseconds per step, share of the step, and GFLOP/s for the convolutions. Each timed
 * dispatch runs in a compute pass of its own, so the rows add up to more than an unprofiled step, which
 * is printed first for scale.
 *
 * Usage: npx tsx scripts/profile-step.ts [resnet20|resnet32|resnet56|resnet110] [BATCH] [STEPS] [--by-shape]
 */
import { init, shutdown } from '../src/node.js';
import { gpu, type ProfileEntry } from '../src/gpu/encoder.js';
import { Tensor, scope } from '../src/tensor/tensor.js';
import { Rng } from '../src/tensor/random.js';
import { cifarResNet, type CifarResNetName } from '../src/models/resnet.js';
import { SGD } from '../src/optim/sgd.js';
import { softmaxCrossEntropy } from '../src/ops/loss.js';

const flags = process.argv.slice(2).filter((a) => a.startsWith('--'));
const [modelName = 'resnet20', batchText = '128', stepsText = '3'] = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const batch = Number(batchText);
const steps = Number(stepsText);
const byShape = flags.includes('--by-shape');
const unknown = flags.filter((f) => f !== '--by-shape');
if (unknown.length || !/^resnet(20|32|56|110)$/.test(modelName) || !(batch >= 1) || !(steps >= 1)) {
  console.error('usage: npx tsx scripts/profile-step.ts [resnet20|resnet32|resnet56|resnet110] [BATCH] [STEPS] [--by-shape]');
  process.exit(2);
}

await init();
const rng = new Rng(1);
const model = cifarResNet(modelName as CifarResNetName, 1);
const optimizer = new SGD(model.parameters(), { lr: 0.05, momentum: 0.9, weightDecay: 5e-4, nesterov: true });
const x = Tensor.fromArray(Float32Array.from({ length: batch * 3 * 32 * 32 }, () => rng.normal()), [batch, 3, 32, 32]).keep();
const y = Tensor.fromArray(Uint32Array.from({ length: batch }, () => rng.int(10)), [batch], 'u32').keep();
/** One SGD step, waited for (reading the loss), as the trainer's progress line does. */
const step = async () => {
  // In a scope, so each step's activations go back to the pool as the trainer's do.
  const loss = scope(() => {
    const l = softmaxCrossEntropy(model.forward(x), y);
    l.backward();
    optimizer.step();
    optimizer.zeroGrad();
    return l;
  });
  await loss.item();
  loss.dispose();
};

for (let i = 0; i < 3; i++) await step(); // pipelines built, pool and bind groups warm
const start = performance.now();
for (let i = 0; i < steps; i++) await step();
const unprofiled = (performance.now() - start) / steps;
gpu().startProfiling();
for (let i = 0; i < steps; i++) await step();
const entries = await gpu().stopProfiling();

/** Multiply-adds × 2 of a convolution dispatch (its dims describe the forward conv for every pass). */
function convFlops(e: ProfileEntry): number {
  const p = e.params;
  if (!/^conv2d(_subgroup)?\.(forward|backward_input|backward_weight)/.test(e.label) || !p) return 0;
  return 2 * p.batch * p.in_channels * p.out_channels * p.out_h * p.out_w * p.kernel_h * p.kernel_w;
}

const rows = new Map<string, { ns: number; dispatches: number; flops: number }>();
let totalNs = 0;
for (const e of entries) {
  const key = byShape && e.params ? `${e.label} ${JSON.stringify(e.params)}` : e.label;
  const row = rows.get(key) ?? { ns: 0, dispatches: 0, flops: 0 };
  row.ns += e.ns;
  row.dispatches++;
  row.flops += convFlops(e);
  rows.set(key, row);
  totalNs += e.ns;
}
const ms = (ns: number) => ns / 1e6 / steps;
console.log(`${modelName}, batch ${batch}, ${steps} steps on ${gpu().adapterInfo.description || gpu().adapterInfo.vendor}:`);
console.log(`unprofiled step ${unprofiled.toFixed(0)} ms (${((batch / unprofiled) * 1000).toFixed(1)} images/s); profiled dispatches ${ms(totalNs).toFixed(0)} ms per step, ${entries.length / steps} per step\n`);
console.log('| kernel | dispatches per step | ms per step | share | GFLOP/s |');
console.log('|---|--:|--:|--:|--:|');
for (const [key, row] of [...rows].sort((a, b) => b[1].ns - a[1].ns)) {
  const gflops = row.flops ? (row.flops / row.ns).toFixed(1) : '';
  console.log(`| ${key} | ${row.dispatches / steps} | ${ms(row.ns).toFixed(1)} | ${((100 * row.ns) / totalNs).toFixed(1)} % | ${gflops} |`);
}
for (const t of [...model.parameters(), ...model.namedBuffers().map(([, b]) => b), ...optimizer.velocity.values(), x, y]) t.dispose();
shutdown();
