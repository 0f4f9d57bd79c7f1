/**
 * Checkpoints and compact models as files (Node): atomic writes, so the previous file survives any failure,
 * and reads that name the file in every error. The formats themselves are platform-neutral
 * (io/checkpoint.ts, prune/compact.ts); a browser stores the same bytes its own way.
 */
import { open } from 'node:fs/promises';
import { outputFileProblem, readFileChecked, sameFile, writeFileAtomic } from './files.js';
import { checkpointToHost, decodeCheckpoint, encodeCheckpoint, type CheckpointState, type LoadedCheckpoint } from './checkpoint.js';
import { applyMasks, compactModelOf, decodeCompactModel, encodeCompactModel, isCompactModel, type CompactResNet, type MasksApplied } from '../prune/compact.js';
import { CifarResNet, cifarResNetShapeOf } from '../models/resnet.js';
import { decodeSafetensorsMetadata, safetensorsHeaderLength } from './safetensors.js';

export async function saveCheckpoint(path: string, state: CheckpointState): Promise<void> {
  await writeFileAtomic(path, encodeCheckpoint(await checkpointToHost(state, path), path));
}

export async function loadCheckpoint(path: string): Promise<LoadedCheckpoint> {
  return decodeCheckpoint(await readFileChecked(path, 'checkpoint'), path);
}

/** What a model file holds, as far as an output path must not replace it. */
export type ModelFileKind = 'training checkpoint' | 'compact model';

/**
 * Whether the file at `path` is a training checkpoint (a safetensors file whose metadata records a training
 * position) or a compact model (written by compact), read from its header alone; null for a missing or unreadable
 * file, or any other file.
 */
export async function modelFileKind(path: string): Promise<ModelFileKind | null> {
  const handle = await open(path, 'r').catch(() => null);
  if (!handle) return null;
  try {
    const first8 = new Uint8Array(8);
    if ((await handle.read(first8, 0, 8, 0)).bytesRead < 8) return null;
    const length = safetensorsHeaderLength(first8);
    const header = new Uint8Array(length);
    if ((await handle.read(header, 0, length, 8)).bytesRead < length) return null;
    const metadata = decodeSafetensorsMetadata(header);
    if (metadata.epoch !== undefined && metadata.step !== undefined) return 'training checkpoint';
    if (metadata.format !== undefined && isCompactModel({ format: JSON.parse(metadata.format) })) return 'compact model';
    return null;
  } catch {
    return null;
  } finally {
    await handle.close();
  }
}

/**
 * Why a command that reads `input` may not write `out`: the output file's own problems (outputFileProblem), or
 * writing it would replace the input, or a model file of a kind in `protect` (a training checkpoint holds momentum,
 * masks and position, which no compact model or ONNX file can give back; compact may rewrite a compact model, export
 * may not).
 */
export async function outputReplacesProblem(out: string, input: string, protect: readonly ModelFileKind[]): Promise<string | null> {
  const problem = await outputFileProblem(out);
  if (problem) return problem;
  if (await sameFile(out, input)) return `it is the --checkpoint being read; writing it would replace that file: name another file`;
  const kind = await modelFileKind(out);
  if (kind && protect.includes(kind)) return `it holds a ${kind}, which this would replace: name another file (or move that one away first)`;
  return null;
}

export async function saveCompactModel(path: string, model: CompactResNet, meta: Record<string, unknown> = {}): Promise<void> {
  await writeFileAtomic(path, await encodeCompactModel(model, meta, path));
}

export async function loadCompactModel(path: string): Promise<CompactResNet> {
  return decodeCompactModel(await readFileChecked(path, 'compact model'), path);
}

/**
 * The CIFAR ResNet a training checkpoint holds, built from its tensors' shapes (depth from the blocks of
 * stage 1, the widths from each stage's first conv, the classes from the classifier), without its weights.
 */
export function cifarResNetOf(checkpoint: LoadedCheckpoint, source: string): CifarResNet {
  const { depth, classes, widths } = cifarShapeOf(checkpoint, source);
  return new CifarResNet(depth, classes, 0, widths);
}

/** The depth, classes and stage widths of the CIFAR ResNet whose tensors a checkpoint holds (host only, no model built). */
export function cifarShapeOf(checkpoint: LoadedCheckpoint, source: string): { depth: number; classes: number; widths: number[] } {
  refuseCompactModel(checkpoint, source);
  return cifarResNetShapeOf(checkpoint.model, source);
}

/** Throws when `checkpoint` is a compact model where a training checkpoint (the full network, its masks) is needed. */
export function refuseCompactModel(checkpoint: LoadedCheckpoint, source: string): void {
  if (isCompactModel(checkpoint.meta)) {
    throw new Error(`${source} is a compact model (written by compact), not a training checkpoint: give the checkpoint.safetensors it was compacted from`);
  }
}

/**
 * A model file's network: a training checkpoint's CIFAR ResNet (with its masks applied, as `compact` applies them,
 * unless `unmasked`), or a compact model written by `compact`.
 */
export type ModelFile =
  | { kind: 'checkpoint'; name: string; model: CifarResNet; masks: MasksApplied | null }
  | { kind: 'compact'; name: string; model: CompactResNet };

/**
 * A model file read and decoded on the host: the commands read theirs before they start the GPU, so a missing
 * file, one that is not safetensors or not a CIFAR ResNet is reported first.
 */
export interface HostModelFile {
  path: string;
  kind: ModelFileKind;
  checkpoint: LoadedCheckpoint;
}

/** Reads a training checkpoint or a compact model (`checkpointOnly`: refuses the latter) without the GPU; see HostModelFile. */
export async function readModelFile(path: string, options: { unmasked?: boolean; checkpointOnly?: boolean } = {}): Promise<HostModelFile> {
  const checkpoint = await loadCheckpoint(path);
  if (options.checkpointOnly) refuseCompactModel(checkpoint, path);
  const file: HostModelFile = { path, kind: isCompactModel(checkpoint.meta) ? 'compact model' : 'training checkpoint', checkpoint };
  refuseUnmasked(file, options.unmasked);
  if (file.kind === 'training checkpoint') cifarShapeOf(checkpoint, path);
  return file;
}

/** --unmasked keeps a training checkpoint's pruned filters as stored; a compact model has none left. */
function refuseUnmasked(file: HostModelFile, unmasked = false): void {
  if (unmasked && file.kind === 'compact model') {
    throw new Error(`--unmasked is for a training checkpoint; ${file.path} is a compact model, whose pruned filters are gone`);
  }
}

/** The network a file holds (a path, or the file already read), with its weights and BN statistics, whichever of the two kinds it is. */
export async function loadModelFile(file: string | HostModelFile, options: { unmasked?: boolean } = {}): Promise<ModelFile> {
  const host = typeof file === 'string' ? await readModelFile(file) : file;
  refuseUnmasked(host, options.unmasked);
  const { path, kind, checkpoint } = host;
  if (kind === 'compact model') return { kind: 'compact', name: 'compact model', model: compactModelOf(checkpoint, path) };
  const model = cifarResNetOf(checkpoint, path);
  model.loadStateDict(checkpoint.model);
  const masks = options.unmasked ? null : await applyMasks(model, checkpoint.masks);
  return { kind: 'checkpoint', name: `ResNet-${model.depth}`, model, masks };
}

