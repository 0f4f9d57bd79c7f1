// eval reads either kind of model file: a training checkpoint and the compact model made from it give the
// same test accuracy (and loss, to float32 reassociation); a file that holds neither is named as such.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CifarResNet } from '../../src/models/resnet.js';
import { FilterPruner } from '../../src/prune/sfp.js';
import { zeroMaskedFilters } from '../../src/prune/compact.js';
import { compactCheckpoint } from '../../src/cli/compact.js';
import { evaluateFile } from '../../src/cli/eval.js';
import { parseArgs } from '../../src/cli/args.js';
import { loadCheckpoint, saveCheckpoint } from '../../src/io/checkpoint-files.js';
import { syntheticCifar10 } from '../../src/data/synthetic.js';
import type { DataSplits } from '../../src/data/node-files.js';
import { assertNoLeak } from '../support/memory.js';

const silent = { status: () => {}, line: () => {} };
const data: DataSplits = { train: syntheticCifar10(8, 1), test: syntheticCifar10(24, 2), kind: 'synthetic', dir: '', description: 'synthetic' };
const dirs: string[] = [];

afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

describe('eval', () => {
  it('scores a compact model as it scores the pruned training checkpoint it came from', async () => {
    const out = await mkdtemp(join(tmpdir(), 'sfp-eval-'));
    dirs.push(out);
    const model = new CifarResNet(20, 10, 5);
    const pruner = new FilterPruner(model, { rate: 0.3 });
    const masks = (await pruner.computeMasks()).byName();
    pruner.dispose();
    // Saved before masking, as soft pruning's regrowth leaves a checkpoint between maskings: eval applies the masks.
    const checkpoint = join(out, 'checkpoint.safetensors');
    await saveCheckpoint(checkpoint, { model: model.stateDict(), masks, meta: { epoch: 1 } });
    const pruned = [...masks.values()].reduce((n, mask) => n + mask.filter((keep) => !keep).length, 0);
    const regrown = await zeroMaskedFilters(model, masks);
    expect(regrown).toBeGreaterThan(0);
    for (const p of model.parameters()) p.dispose();
    for (const [, b] of model.namedBuffers()) b.dispose();
    const compactFile = join(out, 'compact.safetensors');
    await compactCheckpoint(parseArgs('compact', ['--checkpoint', checkpoint, '--out', compactFile, '--check-images', '24', '--batch-size', '8']), { sink: silent, data });
    const lines: string[] = [];
    const dense = await evaluateFile(checkpoint, data, 8, { status: () => {}, line: (l) => lines.push(l) });
    const compact = await evaluateFile(compactFile, data, 8, silent);
    expect(dense.name).toBe('ResNet-20');
    expect(lines).toContain(
      `masks applied: ${pruned} filters of ${masks.size} convs zeroed, as compact zeroes them (${regrown} of their weights were not zero: soft pruning's regrowth since the last masking); --unmasked keeps the weights as stored`,
    );
    expect(compact.name).toBe('compact model');
    expect(compact.count).toBe(24);
    expect(compact.accuracy).toBe(dense.accuracy);
    expect(Math.abs(compact.loss - dense.loss)).toBeLessThan(1e-5 * Math.max(1, dense.loss));
    // --unmasked scores the weights as stored: another model.
    const unmasked = await evaluateFile(checkpoint, data, 8, silent, { unmasked: true });
    expect(Math.abs(unmasked.loss - dense.loss)).toBeGreaterThan(1e-3);
    await expect(evaluateFile(compactFile, data, 8, silent, { unmasked: true })).rejects.toThrow(`--unmasked is for a training checkpoint; ${compactFile} is a compact model`);
  });

  it("reads a state dict as PyTorch's safetensors.torch.save_file writes it: no format_version, num_batches_tracked as I64 or left out", async () => {
    const out = await mkdtemp(join(tmpdir(), 'sfp-eval-plain-'));
    dirs.push(out);
    const model = new CifarResNet(20, 10, 6);
    const ours = join(out, 'ours.safetensors');
    await saveCheckpoint(ours, { model: model.stateDict(), meta: { epoch: 1 } });
    const host = (await loadCheckpoint(ours)).model;
    // The safetensors layout written out by hand: an 8-byte header length, the JSON header, then the data.
    const entries: { name: string; dtype: string; shape: readonly number[]; bytes: Uint8Array }[] = [];
    for (const [name, t] of host) {
      if (!name.endsWith('num_batches_tracked')) entries.push({ name, dtype: 'F32', shape: t.shape, bytes: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength) });
      else if (name === 'bn1.num_batches_tracked') entries.push({ name, dtype: 'I64', shape: [], bytes: new Uint8Array(BigInt64Array.of(7n).buffer) });
    }
    const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
    let offset = 0;
    for (const e of entries) {
      header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + e.bytes.length] };
      offset += e.bytes.length;
    }
    const json = new TextEncoder().encode(JSON.stringify(header).padEnd(Math.ceil(JSON.stringify(header).length / 8) * 8, ' '));
    const file = new Uint8Array(8 + json.length + offset);
    new DataView(file.buffer).setBigUint64(0, BigInt(json.length), true);
    file.set(json, 8);
    let at = 8 + json.length;
    for (const e of entries) {
      file.set(e.bytes, at);
      at += e.bytes.length;
    }
    const plain = join(out, 'plain.safetensors');
    await writeFile(plain, file);
    const expected = await evaluateFile(ours, data, 8, silent);
    let got!: Awaited<ReturnType<typeof evaluateFile>>;
    // The model it loads is released with the rest.
    await assertNoLeak('evaluateFile', async () => void (got = await evaluateFile(plain, data, 8, silent)));
    expect([got.name, got.accuracy, got.loss]).toEqual([expected.name, expected.accuracy, expected.loss]);
    for (const p of model.parameters()) p.dispose();
    for (const [, b] of model.namedBuffers()) b.dispose();
  });

  it('refuses a file that holds neither a CIFAR ResNet nor a compact model, naming the file', async () => {
    const out = await mkdtemp(join(tmpdir(), 'sfp-eval-empty-'));
    dirs.push(out);
    const path = join(out, 'empty.safetensors');
    await saveCheckpoint(path, { model: new Map(), meta: {} });
    await expect(evaluateFile(path, data, 8, silent)).rejects.toThrow(`${path}: no tensor "conv1.weight"; is this a CIFAR ResNet checkpoint?`);
  });

  it('refuses to score a model whose outputs are not finite (a diverged run), and reads the model before the data', async () => {
    const out = await mkdtemp(join(tmpdir(), 'sfp-eval-diverged-'));
    dirs.push(out);
    const model = new CifarResNet(20, 10, 5);
    const path = join(out, 'checkpoint.safetensors');
    // Finite weights, but a BN variance as a diverged run leaves it: the logits overflow to ±∞ and the loss is NaN.
    await saveCheckpoint(path, { model: model.stateDict(), meta: { epoch: 1 } });
    const loaded = await loadCheckpoint(path);
    (loaded.model.get('bn1.running_var')!.data as Float32Array).fill(1e-38);
    (loaded.model.get('conv1.weight')!.data as Float32Array).fill(3e38);
    await saveCheckpoint(path, { model: loaded.model, meta: { epoch: 1 } });
    await expect(evaluateFile(path, data, 8, silent)).rejects.toThrow(/: the test loss of its ResNet-20 is NaN .*its outputs are not finite, so the run that wrote it diverged/);
    for (const p of model.parameters()) p.dispose();
    for (const [, b] of model.namedBuffers()) b.dispose();
    let loadedData = false;
    const missing = join(out, 'missing.safetensors');
    await expect(evaluateFile(missing, async () => ((loadedData = true), data), 8, silent)).rejects.toThrow(missing);
    expect(loadedData).toBe(false);
  });
});
