/**
 * Checkpoints and compact models as files (Node): atomic writes, so the previous file survives any failure,
 * and reads that name the file in every error. The formats themselves are platform-neutral
 * (io/checkpoint.ts, prune/compact.ts); a browser stores the same bytes its own way.
 */
import { readFileChecked, writeFileAtomic } from './files.js';
import { checkpointToHost, decodeCheckpoint, encodeCheckpoint, type CheckpointState, type LoadedCheckpoint } from './checkpoint.js';
import { decodeCompactModel, encodeCompactModel, type CompactResNet } from '../prune/compact.js';

export async function saveCheckpoint(path: string, state: CheckpointState): Promise<void> {
  await writeFileAtomic(path, encodeCheckpoint(await checkpointToHost(state, path), path));
}

export async function loadCheckpoint(path: string): Promise<LoadedCheckpoint> {
  return decodeCheckpoint(await readFileChecked(path, 'checkpoint'), path);
}

export async function saveCompactModel(path: string, model: CompactResNet, meta: Record<string, unknown> = {}): Promise<void> {
  await writeFileAtomic(path, await encodeCompactModel(model, meta, path));
}

export async function loadCompactModel(path: string): Promise<CompactResNet> {
  return decodeCompactModel(await readFileChecked(path, 'compact model'), path);
}
