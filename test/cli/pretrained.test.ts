// train --pretrained: a run starts from another run's weights (not its momentum or position), and hard
// pruning chooses its masks from those weights, as the SFP paper's hard-pruning baseline does.
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { trainModel } from '../../src/cli/train.js';
import { parseArgs } from '../../src/cli/args.js';
import { compactCheckpoint } from '../../src/cli/compact.js';
import { syntheticCifar10 } from '../../src/data/synthetic.js';
import { loadCheckpoint } from '../../src/io/checkpoint-files.js';
import { encodeSafetensors } from '../../src/io/safetensors.js';
import { cifarResNet } from '../../src/models/resnet.js';
import { FilterPruner } from '../../src/prune/sfp.js';
import type { DataSplits } from '../../src/data/node-files.js';

const silent = { status: () => {}, line: () => {} };
const data: DataSplits = { train: syntheticCifar10(32, 1), test: syntheticCifar10(16, 2), kind: 'synthetic', dir: '', description: 'synthetic' };
const dirs: string[] = [];

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'sfp-pretrained-'));
  dirs.push(dir);
  return dir;
}

afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

describe('train --pretrained', () => {
  it('hard pruning starts from the pretrained weights and masks the filters that are smallest in them', async () => {
    const first = await tempDir();
    const base = ['--model', 'resnet20', '--epochs', '1', '--batch-size', '8', '--warmup-epochs', '0'];
    const pretrain = await trainModel(parseArgs('train', [...base, '--lr', '0.5', '--max-steps', '3', '--out', first]), { sink: silent, data });
    for (const t of [...pretrain.model.parameters(), ...pretrain.model.namedBuffers().map(([, b]) => b)]) t.dispose();
    const checkpoint = join(first, 'checkpoint.safetensors');

    // The masks a hard pruner chooses from the pretrained weights, computed apart from the run.
    const reference = cifarResNet('resnet20', 7);
    reference.loadStateDict((await loadCheckpoint(checkpoint)).model);
    const expected = (await new FilterPruner(reference, { rate: 0.3, mode: 'hard' }).computeMasks()).toJSON();
    // Different from what the fresh initialisation of the run below (seed 0) would give.
    const fresh = (await new FilterPruner(cifarResNet('resnet20', 0), { rate: 0.3, mode: 'hard' }).computeMasks()).toJSON();
    expect(expected).not.toEqual(fresh);

    const second = await tempDir();
    const run = await trainModel(
      parseArgs('train', [...base, '--lr', '0.05', '--max-steps', '1', '--sfp-rate', '0.3', '--hard-prune', '--pretrained', checkpoint, '--out', second]),
      { sink: silent, data },
    );
    expect(run.pruner!.masks!.toJSON()).toEqual(expected);
    // run.json names the checkpoint by its bytes too, so a report can tell where the run started after a move.
    const recorded = JSON.parse(await readFile(join(second, 'run.json'), 'utf8'));
    expect(recorded.pretrainedSha256).toBe(createHash('sha256').update(await readFile(checkpoint)).digest('hex'));

    // Another model's checkpoint: the error names both models and what to pass, before anything is written.
    const third = await tempDir();
    await expect(
      trainModel(parseArgs('train', [...base.slice(2), '--model', 'resnet32', '--max-steps', '1', '--pretrained', checkpoint, '--out', third]), { sink: silent, data }),
    ).rejects.toThrow(`--pretrained ${checkpoint} holds a resnet20, not the resnet32 this run trains: pass --model resnet20, or a resnet32 checkpoint`);
    expect(await readdir(third)).toEqual([]);
    // The same weights as a plain PyTorch state dict (no config recorded): its tensors tell the depth.
    const plain = join(first, 'state_dict.safetensors');
    await writeFile(plain, encodeSafetensors(Object.fromEntries((await loadCheckpoint(checkpoint)).model), { format: 'pt' }));
    await expect(
      trainModel(parseArgs('train', [...base.slice(2), '--model', 'resnet32', '--max-steps', '1', '--pretrained', plain, '--out', third]), { sink: silent, data }),
    ).rejects.toThrow(`--pretrained ${plain} holds a resnet20, not the resnet32 this run trains: pass --model resnet20, or a resnet32 checkpoint`);
    expect(await readdir(third)).toEqual([]);

    // A compact model (what `compact` writes from that checkpoint): train and compact both ask for the checkpoint.
    const compactFile = join(first, 'compact.safetensors');
    const compacted = await compactCheckpoint(parseArgs('compact', ['--checkpoint', join(second, 'checkpoint.safetensors'), '--out', compactFile, '--check-images', '8', '--batch-size', '8']), { sink: silent, data });
    for (const t of [...compacted.masked.parameters(), ...compacted.masked.namedBuffers().map(([, b]) => b)]) t.dispose();
    const refusal = `is a compact model (written by compact), not a training checkpoint: give the checkpoint.safetensors it was compacted from`;
    await expect(
      trainModel(parseArgs('train', [...base, '--max-steps', '1', '--pretrained', compactFile, '--out', third]), { sink: silent, data }),
    ).rejects.toThrow(`--pretrained ${compactFile} ${refusal}`);
    await expect(compactCheckpoint(parseArgs('compact', ['--checkpoint', compactFile, '--out', join(third, 'again.safetensors')]), { sink: silent, data })).rejects.toThrow(
      `${compactFile} ${refusal}`,
    );
    expect(await readdir(third)).toEqual([]);
  });
});
