import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { gpu } from '../../src/gpu/encoder.js';
import {
  checkpointFormatVersion,
  decodeCheckpoint,
  encodeCheckpoint,
  type HostCheckpoint,
} from '../../src/io/checkpoint.js';
import { loadCheckpoint, saveCheckpoint } from '../../src/io/checkpoint-files.js';
import { decodeSafetensors, encodeSafetensors, type HostTensor } from '../../src/io/safetensors.js';
import { Rng } from '../../src/tensor/random.js';
import { Tensor } from '../../src/tensor/tensor.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sfp-ckpt-'));
});

const host = (dtype: HostTensor['dtype'], shape: number[], values: number[]): HostTensor => ({
  dtype,
  shape,
  data: dtype === 'f32' ? Float32Array.from(values) : dtype === 'u32' ? Uint32Array.from(values) : Int32Array.from(values),
});

/** A small model state: a 4-filter conv, its BN, and an empty tensor. */
function hostModel(): Map<string, HostTensor> {
  return new Map([
    ['conv1.weight', host('f32', [4, 1, 1, 2], [0.5, -1, 2, 3, -4, 5.25, 6, 7])],
    ['bn1.running_mean', host('f32', [4], [0.1, 0.2, 0.3, 0.4])],
    ['bn1.num_batches_tracked', host('i32', [], [391])],
    ['unused', host('f32', [0], [])],
  ]);
}

describe('checkpoint round trip', () => {
  it('momentum, masks, metadata and GPU tensors survive a save and load, with one batched readback', async () => {
    const rng = new Rng(7);
    rng.normal(); // leaves a spare normal in the state, which must survive too
    const weight = Tensor.fromArray([1, -2, 3.5, 4, 5, 6, 7, 8], [4, 1, 1, 2]);
    const model = new Map<string, Tensor | HostTensor>([
      ['conv1.weight', weight],
      ['bn1.running_mean', Tensor.fromArray([0.5, 0, -0.5, 1], [4])],
      ['bn1.num_batches_tracked', Tensor.fromArray([391], [], 'i32')],
      ['fc.index', Tensor.fromArray([0, 4294967295], [2], 'u32')],
      ['empty', Tensor.fromArray([], [0])],
      ['host.bias', host('f32', [2], [0.25, -0.75])],
    ]);
    const optimizer = new Map([['conv1.weight', Tensor.fromArray([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8], [4, 1, 1, 2])]]);
    const masks = new Map([['conv1', new Uint32Array([1, 0, 1, 1])]]);
    const meta = {
      epoch: 3,
      step: 1173,
      schedule: { kind: 'multistep', milestones: [60, 120, 160], gamma: 0.2 },
      rng: rng.state(),
      loader: { order: [3, 1, 2], cursor: 2 },
      config: { model: 'resnet20', sfpRate: 0.3, hardPrune: false, resume: null },
      extremes: [NaN, Infinity, -Infinity, 1e-300, -5e-324],
    };
    const path = join(dir, 'ckpt.safetensors');

    const readbacks = gpu().stats().readbacks;
    await saveCheckpoint(path, { model, optimizer, masks, meta });
    expect(gpu().stats().readbacks - readbacks).toBe(1);

    const loaded = await loadCheckpoint(path);
    expect([...loaded.model.keys()].sort()).toEqual([...model.keys()].sort());
    for (const [name, tensor] of model) {
      const expected = tensor instanceof Tensor ? await tensor.toArray() : tensor.data;
      const actual = loaded.model.get(name)!;
      expect(actual.dtype).toBe(tensor.dtype);
      expect(actual.shape).toEqual([...tensor.shape]);
      expect(actual.data).toEqual(expected);
    }
    expect(loaded.model.get('bn1.num_batches_tracked')!.data).toBeInstanceOf(Int32Array);
    expect([...loaded.optimizer.keys()]).toEqual(['conv1.weight']);
    expect(loaded.optimizer.get('conv1.weight')!.data).toEqual(Float32Array.from([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]));
    expect(loaded.masks).toEqual(masks);
    expect(loaded.meta).toEqual(meta);

    // The restored generator continues exactly where the saved one would have.
    const restored = new Rng(0);
    restored.setState(loaded.meta.rng as number[]);
    expect([restored.normal(), restored.nextU32()]).toEqual([rng.normal(), rng.nextU32()]);
    expect(await readdir(dir)).toEqual(['ckpt.safetensors']);
  });

  it('is a plain safetensors file with PyTorch state_dict names and JSON metadata', () => {
    const bytes = encodeCheckpoint({
      model: hostModel(),
      optimizer: new Map([['conv1.weight', host('f32', [4, 1, 1, 2], [1, 2, 3, 4, 5, 6, 7, 8])]]),
      masks: new Map([['conv1', new Uint32Array([1, 1, 0, 1])]]),
      meta: { epoch: 3, config: { lr: 0.1 } },
    });
    const { tensors, metadata } = decodeSafetensors(bytes);
    expect([...tensors.keys()]).toEqual([
      'bn1.num_batches_tracked',
      'bn1.running_mean',
      'conv1.weight',
      'masks.conv1',
      'optimizer.conv1.weight.momentum_buffer',
      'unused',
    ]);
    // I32: safetensors.torch reads U32 only from torch 2.3 on.
    expect(tensors.get('masks.conv1')).toEqual(host('i32', [4], [1, 1, 0, 1]));
    expect(metadata).toEqual({ format_version: String(checkpointFormatVersion), epoch: '3', config: '{"lr":0.1}' });
  });

  it('encodes the same state to the same bytes, and re-encodes a decoded checkpoint unchanged', () => {
    const state: HostCheckpoint = { model: hostModel(), masks: new Map([['conv1', new Uint32Array([0, 1, 1, 1])]]), meta: { epoch: 1 } };
    const bytes = encodeCheckpoint(state);
    expect(encodeCheckpoint(state)).toEqual(bytes);
    expect(encodeCheckpoint(decodeCheckpoint(bytes))).toEqual(bytes);
  });
});

describe('checkpoint errors', () => {
  it('names the file and the problem for a truncated or corrupt checkpoint', async () => {
    const path = join(dir, 'bad.safetensors');
    const bytes = encodeCheckpoint({ model: hostModel(), meta: { epoch: 1 } });
    await writeFile(path, bytes.subarray(0, bytes.length - 10));
    // The data is 4 + 16 + 32 = 52 bytes (num_batches_tracked, running_mean, conv1.weight); 10 are missing.
    await expect(loadCheckpoint(path)).rejects.toThrow(
      `${path}: not a valid safetensors file: tensor "conv1.weight": data_offsets [20, 52) run past the end of the data (42 bytes; truncated file?)`,
    );
    await writeFile(path, bytes.subarray(0, 20));
    await expect(loadCheckpoint(path)).rejects.toThrow(`${path}: not a valid safetensors file: header length`);
    await writeFile(path, new TextEncoder().encode('PK\x03\x04 a zip, not a checkpoint'));
    await expect(loadCheckpoint(path)).rejects.toThrow(`${path}: not a valid safetensors file: header length`);
  });

  it('says when the file is missing', async () => {
    const path = join(dir, 'nope.safetensors');
    await expect(loadCheckpoint(path)).rejects.toThrow(`checkpoint not found: ${path}`);
  });

  it('reads a plain safetensors state dict as weights only; refuses a newer format and metadata that is not JSON', () => {
    // As safetensors.torch.save_file writes a state dict: no format_version, metadata that is not ours.
    const plain = decodeCheckpoint(encodeSafetensors({ w: host('f32', [1], [1]) }, { format: 'pt' }), 'w.safetensors');
    expect([...plain.model.keys()]).toEqual(['w']);
    expect(plain.model.get('w')!.data).toEqual(Float32Array.of(1));
    expect([plain.optimizer.size, plain.masks.size, plain.meta]).toEqual([0, 0, {}]);
    const newer = encodeSafetensors({}, { format_version: String(checkpointFormatVersion + 1) });
    expect(() => decodeCheckpoint(newer)).toThrow(`checkpoint: written in checkpoint format ${checkpointFormatVersion + 1}, but this build reads formats up to ${checkpointFormatVersion}`);
    const badMeta = encodeSafetensors({}, { format_version: '1', epoch: '{oops' });
    expect(() => decodeCheckpoint(badMeta)).toThrow('checkpoint: meta "epoch" is not valid JSON');
  });

  it('refuses masks and momentum that do not match the model, on write and on read', () => {
    const model = hostModel();
    const cases: [HostCheckpoint, string][] = [
      [{ model, optimizer: new Map([['fc.weight', host('f32', [1], [0])]]), meta: {} }, 'optimizer state for "fc.weight", but the model has no tensor of that name'],
      [{ model, optimizer: new Map([['conv1.weight', host('f32', [8], new Array(8).fill(0))]]), meta: {} }, 'momentum buffer of "conv1.weight" has shape [8], the parameter has [4, 1, 1, 2]'],
      [{ model, masks: new Map([['conv1', new Uint32Array(3)]]), meta: {} }, 'mask for "conv1" has 3 entries, but "conv1.weight" has 4 filters'],
      [{ model, masks: new Map([['conv1', new Uint32Array([1, 2, 1, 1])]]), meta: {} }, 'mask for "conv1" must hold 0 or 1, got 2 at filter 1'],
      [{ model, masks: new Map([['conv9', new Uint32Array(4)]]), meta: {} }, 'mask for "conv9", but the model has no tensor "conv9.weight"'],
      [{ model: new Map([['masks.x', host('f32', [1], [0])]]), meta: {} }, 'model tensor "masks.x" clashes with the reserved prefixes'],
    ];
    for (const [state, message] of cases) expect(() => encodeCheckpoint(state, 'out.safetensors')).toThrow(`out.safetensors: ${message}`);

    // The same checks on read, for a file written by something else.
    const forged = encodeSafetensors(
      { 'conv1.weight': model.get('conv1.weight')!, 'masks.conv1': host('u32', [2], [1, 0]) },
      { format_version: '1' },
    );
    expect(() => decodeCheckpoint(forged, 'f')).toThrow('f: mask for "conv1" has 2 entries, but "conv1.weight" has 4 filters');
    const negative = encodeSafetensors({ 'conv1.weight': model.get('conv1.weight')!, 'masks.conv1': host('i32', [4], [1, -1, 1, 1]) }, { format_version: '1' });
    expect(() => decodeCheckpoint(negative, 'f')).toThrow('f: mask for "conv1" must hold 0 or 1, got -1 at filter 1');
  });

  it('reads the U32 masks of checkpoints written before masks were I32', () => {
    const model = hostModel();
    const old = encodeSafetensors({ 'conv1.weight': model.get('conv1.weight')!, 'masks.conv1': host('u32', [4], [1, 0, 1, 1]) }, { format_version: '1' });
    const decoded = decodeCheckpoint(old, 'old.safetensors');
    expect(decoded.masks.get('conv1')).toEqual(new Uint32Array([1, 0, 1, 1]));
    expect(decodeSafetensors(encodeCheckpoint(decoded)).tensors.get('masks.conv1')).toEqual(host('i32', [4], [1, 0, 1, 1]));
  });

  it('refuses metadata that JSON cannot hold, naming where it is', () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ loader: { order: new Uint32Array(3) } }, 'meta loader.order is a Uint32Array'],
      [{ config: { milestones: new Map() } }, 'meta config.milestones is a Map'],
      [{ step: 10n }, 'meta step is a bigint'],
      [{ list: [1, undefined] }, 'meta list[1] is undefined'],
      [{ format_version: 2 }, 'meta key "format_version" is reserved'],
    ];
    for (const [meta, message] of cases) expect(() => encodeCheckpoint({ model: hostModel(), meta })).toThrow(message);
  });

  it('leaves the previous checkpoint in place when a save fails', async () => {
    const path = join(dir, 'ckpt.safetensors');
    await saveCheckpoint(path, { model: hostModel(), meta: { epoch: 1 } });
    const before = await readFile(path);
    const released = Tensor.fromArray([1], [1]);
    released.dispose();
    await expect(saveCheckpoint(path, { model: new Map([['w', released]]), meta: { epoch: 2 } })).rejects.toThrow(
      `${path}: cannot save model tensor "w" ([1] f32): it was released`,
    );
    expect(await readFile(path)).toEqual(before);
    expect((await loadCheckpoint(path)).meta).toEqual({ epoch: 1 });
  });
});
