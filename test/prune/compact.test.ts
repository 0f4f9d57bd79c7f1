// "The compact model's logits equal the masked model's": CIFAR ResNet-20 (full widths, 10×10 inputs so the
// option-A shortcut meets an odd size) with random weights, random BN statistics and affine parameters
// (β of both signs, so ReLU(BN(0)) is both 0 and > 0), masked in every way the pruners produce, compacted,
// and run in eval mode on a batch of 4. The tolerance is float32 reassociation (conv sums over fewer channels
// plus a bias map), within 1e-5 of the logits' scale; predictions must be identical.
import { afterEach, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CifarResNet } from '../../src/models/resnet.js';
import { FilterPruner } from '../../src/prune/sfp.js';
import { buildCompactionPlan, type CompactionPlan } from '../../src/prune/plan.js';
import { loadCompactModel, saveCompactModel } from '../../src/io/checkpoint-files.js';
import { checkEquivalence, compactModel, compactModelOf, equivalenceProblem, zeroMaskedFilters, type CompactResNet, type HostImages } from '../../src/prune/compact.js';
import { decodeCheckpoint } from '../../src/io/checkpoint.js';
import { compactParameters } from '../../src/prune/flops.js';
import { SGD } from '../../src/optim/sgd.js';
import { softmaxCrossEntropy } from '../../src/ops/loss.js';
import { Tensor, scope } from '../../src/tensor/tensor.js';
import { gpu } from '../../src/gpu/encoder.js';
import { Rng } from '../../src/tensor/random.js';
import type { HostTensor, Module } from '../../src/nn/module.js';
import { randomArray, seedFor } from '../support/random.js';
import { assertClose } from '../support/allclose.js';
import { exportCompactResNet } from '../../src/io/onnx.js';
import { hostLogits, onnxLogits } from '../support/onnx.js';

const SIZE = 10;
const live: Module[] = [];

afterEach(() => {
  for (const m of live.splice(0)) {
    for (const p of m.parameters()) p.dispose();
    for (const [, b] of m.namedBuffers()) b.dispose();
  }
});

/** ResNet-20 with random conv/fc weights and random BN affine parameters and running statistics. */
function randomModel(name: string): CifarResNet {
  const rng = new Rng(seedFor(name));
  const model = new CifarResNet(20, 10, seedFor(name));
  live.push(model);
  const state = new Map<string, HostTensor>();
  for (const [key, t] of model.stateDict()) {
    if (!(t instanceof Tensor)) {
      state.set(key, t);
      continue;
    }
    let data: Float32Array;
    if (key.endsWith('running_var')) data = randomArray(rng, t.size, 0.3, 2);
    else if (key.endsWith('running_mean')) data = randomArray(rng, t.size, -1, 1);
    else if (/bn\d\.weight$/.test(key)) data = randomArray(rng, t.size, -1.5, 1.5);
    else if (/bn\d\.bias$/.test(key)) data = randomArray(rng, t.size, -1, 1);
    else if (key === 'fc.bias') data = randomArray(rng, t.size, -0.5, 0.5);
    else {
      const fanIn = t.size / t.shape[0];
      data = Float32Array.from({ length: t.size }, () => rng.normal() * Math.sqrt(2 / fanIn));
    }
    state.set(key, { dtype: 'f32', shape: [...t.shape], data });
  }
  model.loadStateDict(state);
  return model;
}

function images(name: string): HostImages {
  const rng = new Rng(seedFor(`${name} images`));
  const shape = [4, 3, SIZE, SIZE];
  return { x: randomArray(rng, shape.reduce((a, b) => a * b), -2, 2), shape };
}

async function masksOf(model: CifarResNet, options: ConstructorParameters<typeof FilterPruner>[1]): Promise<Map<string, Uint32Array>> {
  const pruner = new FilterPruner(model, options);
  const masks = await pruner.computeMasks();
  pruner.dispose();
  return masks.byName();
}

/** Zeroes the masked filters, plans, compacts and compares; returns the plan and compact model for more checks. */
async function compactAndCompare(name: string, model: CifarResNet, masks: Map<string, Uint32Array>): Promise<{ plan: CompactionPlan; compact: CompactResNet }> {
  await zeroMaskedFilters(model, masks);
  const plan = await buildCompactionPlan(model, masks);
  const compact = await compactModel(model, plan, { inputSize: [SIZE, SIZE] });
  live.push(compact);
  const report = await checkEquivalence(model, compact, [images(name)]);
  expect(report.images).toBe(4);
  expect(report.maxAbsLogit).toBeGreaterThan(0.1);
  expect(report.maxAbsDiff, `${name}: max |Δlogit| ${report.maxAbsDiff} at scale ${report.maxAbsLogit}\n${plan}`).toBeLessThanOrEqual(1e-5 * Math.max(1, report.maxAbsLogit));
  expect(report.predictionsEqual).toBe(true);
  expect(compact.parameterCount()).toBe(compactParameters(model, plan.keptCounts(), plan.streamWidths()));
  await expectOnnxMatches(name, compact);
  return { plan, compact };
}

/** The compact model exported to ONNX gives, in ONNX Runtime, the compact model's logits. */
async function expectOnnxMatches(name: string, compact: CompactResNet): Promise<void> {
  const { x, shape } = images(name);
  const theirs = await onnxLogits(await exportCompactResNet(compact), x, shape);
  expect(theirs.dims).toEqual([shape[0], 10]);
  assertClose(theirs.data, await hostLogits(compact, x, shape), { atol: 1e-4, rtol: 1e-4, label: `${name}: onnxruntime vs compact logits` });
}

/** Every constant of the plan, to check that the case exercises ReLU(BN(0)) = 0 and > 0. */
function constants(plan: CompactionPlan): number[] {
  return plan.convs().flatMap((c) => c.constantOut.map((k) => k.value));
}

describe('compaction preserves the eval-mode logits', () => {
  it('faithful SFP masks at 30 % (each conv ranked alone): the stream stays (nearly) full width, constants scatter-added', async () => {
    const model = randomModel('faithful');
    const { plan, compact } = await compactAndCompare('faithful', model, await masksOf(model, { rate: 0.3 }));
    expect(plan.blocks[0].conv1.keptOut.length).toBe(12);
    const values = constants(plan);
    expect(values.some((v) => v === 0) && values.some((v) => v > 0) && values.some((v) => v < 0)).toBe(true);
    expect(compact.parameterCount()).toBeLessThan(model.parameters().reduce((n, p) => n + p.size, 0));
    expect(compact.stages.flatMap((stage) => stage.blocks.filter((b) => b.join.isPlainAdd))).toEqual([]);
    // The control: dropping the constants (as the official code does for conv1/conv2) changes the logits.
    for (const stage of compact.stages) for (const block of stage.blocks) gpu().upload(block.join.constants.buffer, new Float32Array(block.join.constants.size));
    const broken = await checkEquivalence(model, compact, [images('faithful')]);
    expect(broken.maxAbsDiff).toBeGreaterThan(1e-2);
  });

  it('random masks at 50 % with random filter choices', async () => {
    const model = randomModel('random');
    const rng = new Rng(seedFor('random masks'));
    const masks = new Map(
      model.convs().map(([name, conv]) => {
        const mask = new Uint32Array(conv.outChannels).fill(1);
        const order = Array.from(mask, (_, j) => j).sort(() => rng.uniform() - 0.5);
        for (const j of order.slice(0, conv.outChannels / 2)) mask[j] = 0;
        return [name, mask];
      }),
    );
    await compactAndCompare('random', model, masks);
  });

  it('coupled masks (one per residual stream): every stage’s stream narrows to its kept filters (12, 23, 45)', async () => {
    const model = randomModel('coupled');
    const { plan, compact } = await compactAndCompare('coupled', model, await masksOf(model, { rate: 0.3, coupled: true }));
    const widths = plan.streamWidths();
    expect([widths.get('layer1.1'), widths.get('layer2.1'), widths.get('layer3.1'), widths.get('fc')]).toEqual([12, 23, 45, 45]);
    // Channel for channel, the joins inside a stage are relu(y + residual): the plain add runs them.
    const plainAdds = compact.stages.flatMap((stage) => stage.blocks.map((b) => b.join.isPlainAdd));
    expect(plainAdds).toEqual([true, true, true, false, true, true, false, true, true]);
  });

  it('hard-pruned masks after a training step (BN statistics moved, pruned filters re-zeroed)', async () => {
    const model = randomModel('hard');
    const pruner = new FilterPruner(model, { rate: 0.4, mode: 'hard' });
    const optimizer = new SGD(model.parameters(), { lr: 0.05, momentum: 0.9 });
    pruner.apply(await pruner.computeMasks(), optimizer);
    scope(() => {
      const rng = new Rng(seedFor('hard step'));
      const x = Tensor.fromArray(randomArray(rng, 8 * 3 * SIZE * SIZE, -2, 2), [8, 3, SIZE, SIZE]);
      softmaxCrossEntropy(model.forward(x), Tensor.fromArray(Uint32Array.from({ length: 8 }, () => rng.int(10)), [8], 'u32')).backward();
      optimizer.step();
      optimizer.zeroGrad();
      pruner.zeroPruned(optimizer);
    });
    const masks = pruner.masks!.byName();
    pruner.dispose();
    for (const v of optimizer.velocity.values()) v.dispose();
    expect(await zeroMaskedFilters(model, masks)).toBe(0);
    await compactAndCompare('hard', model, masks);
  });

  it('a channel pruned by the stem and every conv2 of stage 1, and a zero-padded channel of stage 2 pruned by every conv2 there, are dropped from the stream', async () => {
    const model = randomModel('stream channel');
    const prune = (width: number, pruned: number[]) => Uint32Array.from({ length: width }, (_, j) => (pruned.includes(j) ? 0 : 1));
    const masks = new Map<string, Uint32Array>([['conv1', prune(16, [6])]]);
    for (let i = 0; i < 3; i++) {
      masks.set(`layer1.${i}.conv2`, prune(16, [6]));
      masks.set(`layer2.${i}.conv2`, prune(32, [25]));
      masks.set(`layer3.${i}.conv1`, prune(64, [i]));
    }
    const { plan } = await compactAndCompare('stream channel', model, masks);
    expect(plan.streamWidths().get('layer1.1')).toBe(15);
    expect(plan.streamWidths().get('layer2.0')).toBe(15);
    expect(plan.streamWidths().get('layer3.0')).toBe(31);
    expect(plan.blocks[3].conv1.constantIn.map((c) => c.channel)).toEqual([6]);
    expect(plan.blocks[6].conv1.constantIn.map((c) => c.channel)).toEqual([25]);
  });

  it('only the stem pruned', async () => {
    const model = randomModel('stem');
    const masks = new Map([['conv1', Uint32Array.from({ length: 16 }, (_, j) => (j % 3 === 0 ? 0 : 1))]]);
    const { plan } = await compactAndCompare('stem', model, masks);
    expect(plan.blocks[0].conv1.keptIn.length).toBe(10);
  });

  it('rate 0: the identity plan gives bit-identical logits', async () => {
    const model = randomModel('identity');
    await zeroMaskedFilters(model, new Map());
    const plan = await buildCompactionPlan(model, new Map());
    expect(plan.isIdentity).toBe(true);
    const compact = await compactModel(model, plan, { inputSize: [SIZE, SIZE] });
    live.push(compact);
    const report = await checkEquivalence(model, compact, [images('identity')]);
    expect(report.maxAbsDiff).toBe(0);
    expect(compact.parameterCount()).toBe(model.parameters().reduce((n, p) => n + p.size, 0));
  });

  it('saved as safetensors with the plan in the metadata, it loads back and gives the same logits', async () => {
    const model = randomModel('save');
    const { plan, compact } = await compactAndCompare('save', model, await masksOf(model, { rate: 0.4 }));
    const dir = await mkdtemp(join(tmpdir(), 'sfp-compact-'));
    try {
      const path = join(dir, 'compact.safetensors');
      await saveCompactModel(path, compact);
      const loaded = await loadCompactModel(path);
      live.push(loaded);
      expect(loaded.plan.toString()).toBe(plan.toString());
      expect([...loaded.stateDict().keys()]).toEqual([...compact.stateDict().keys()]);
      expect([...compact.stateDict().keys()]).toContain('layer1.0.join.constants');
      const report = await checkEquivalence(compact, loaded, [images('save')]);
      expect(report.maxAbsDiff).toBe(0);
      // A join tensor that disagrees with the plan (which decides the graph and the ONNX export) is refused.
      const checkpoint = decodeCheckpoint(await readFile(path), path);
      const index = checkpoint.model.get('layer1.0.join.y_index')!;
      index.data[0] = index.data[0] === 0 ? 1 : 0;
      expect(() => compactModelOf(checkpoint, path)).toThrow(`${path}: tensor "layer1.0.join.y_index" disagrees with the compaction plan`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('sfp-gpu compact', () => {
  it('compacts a training checkpoint (model + masks), checks it on test images and writes a file that loads back; a failed check is named', async () => {
    const { runCompact } = await import('../../src/cli/compact.js');
    const { saveCheckpoint } = await import('../../src/io/checkpoint-files.js');
    const model = randomModel('cli');
    const masks = await masksOf(model, { rate: 0.3 });
    const dir = await mkdtemp(join(tmpdir(), 'sfp-compact-cli-'));
    try {
      const input = join(dir, 'checkpoint.safetensors');
      const output = join(dir, 'compact.safetensors');
      // Weights saved before masking: the command zeroes the masked filters itself.
      await saveCheckpoint(input, { model: model.stateDict(), masks, meta: { epoch: 0 } });
      const report = await runCompact(['--checkpoint', input, '--out', output, '--check-images', '16', '--batch-size', '8']);
      expect(report.images).toBe(16);
      expect(equivalenceProblem(report)).toBeNull();
      const loaded = await loadCompactModel(output);
      live.push(loaded);
      expect(loaded.inputSize).toEqual([32, 32]);
      expect(loaded.parameterCount()).toBeLessThan(model.parameters().reduce((n, p) => n + p.size, 0));
      // `export` takes the compact file as it takes a training checkpoint; ONNX Runtime gives its logits.
      const { runExport } = await import('../../src/cli/export.js');
      const onnxPath = join(dir, 'compact.onnx');
      await runExport(['--checkpoint', output, '--out', onnxPath]);
      const x = randomArray(new Rng(seedFor('cli onnx')), 2 * 3 * 32 * 32, -2, 2);
      const theirs = (await onnxLogits(onnxPath, x, [2, 3, 32, 32])).data;
      const ours = await hostLogits(loaded, x, [2, 3, 32, 32]);
      assertClose(theirs, ours, { atol: 1e-4, rtol: 1e-4, label: 'exported compact file: onnxruntime vs compact logits' });
      // The training checkpoint exports with its masks applied (its weights were saved before masking): the same function.
      const maskedOnnx = join(dir, 'masked.onnx');
      await runExport(['--checkpoint', input, '--out', maskedOnnx]);
      assertClose((await onnxLogits(maskedOnnx, x, [2, 3, 32, 32])).data, ours, { atol: 1e-4, rtol: 1e-4, label: 'exported masked checkpoint vs compact logits' });
      const rawOnnx = join(dir, 'unmasked.onnx');
      await runExport(['--checkpoint', input, '--out', rawOnnx, '--unmasked']);
      const raw = (await onnxLogits(rawOnnx, x, [2, 3, 32, 32])).data;
      expect(Math.max(...raw.map((v, i) => Math.abs(v - ours[i])))).toBeGreaterThan(1e-2);
      // A file that holds neither kind of model: export says what it looked for.
      const empty = join(dir, 'empty.safetensors');
      await saveCheckpoint(empty, { model: new Map(), meta: {} });
      await expect(runExport(['--checkpoint', empty, '--out', join(dir, 'empty.onnx')])).rejects.toThrow('no tensor "conv1.weight"; is this a CIFAR ResNet checkpoint?');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    const base = { images: 10, maxAbsDiff: 0, maxAbsLogit: 5, predictionMismatches: 0, predictionsEqual: true, maskedCorrect: 0, compactCorrect: 0 };
    expect(equivalenceProblem({ ...base, maxAbsDiff: 2e-3 })).toMatch(/exceeds 0\.00100 /);
    // Logits of a diverged model (|logit| ~ 1e4) differ by more in float32: the bound scales with them.
    expect(equivalenceProblem({ ...base, maxAbsLogit: 2e4, maxAbsDiff: 6e-3 })).toBeNull();
    expect(equivalenceProblem({ ...base, maxAbsLogit: 2e4, maxAbsDiff: 3 })).toMatch(/exceeds 2\.00 /);
    expect(equivalenceProblem({ ...base, maxAbsDiff: NaN })).toMatch(/NaN/);
    expect(equivalenceProblem({ ...base, predictionMismatches: 1, predictionsEqual: false })).toMatch(/1 of 10 predictions differ/);
  });
});
