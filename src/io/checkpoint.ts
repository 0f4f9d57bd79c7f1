/**
 * A training checkpoint is ONE safetensors file, readable by `safetensors.torch.load_file`:
 *
 *   <state_dict name>                        model tensors, named exactly as the caller gives them (layer1.0.conv1.weight, bn1.running_mean, ...)
 *   optimizer.<param name>.momentum_buffer   SGD momentum, keyed like PyTorch's optimizer state
 *   masks.<conv name>                        I32 [C_out], 1 = filter kept, 0 = zeroed (soft or hard pruning); U32 is read too
 *   __metadata__                             every meta field as a JSON string, plus format_version
 *
 * A plain safetensors state dict (no format_version, as PyTorch's safetensors.torch.save_file writes it) reads as
 * model tensors only, with no meta.
 *
 * encodeCheckpoint/decodeCheckpoint are pure and run in a browser; saveCheckpoint/loadCheckpoint add one batched
 * GPU readback and Node's atomic file write.
 */
import { gpu } from '../gpu/encoder.js';
import { formatShape, sameShape } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { decodeSafetensors, encodeSafetensors, SafetensorsError, type HostArray, type HostTensor } from './safetensors.js';

/** Bumped when the layout changes in a way an older reader would misread; 2: masks as I32 (format 1 had U32; both are read). */
export const checkpointFormatVersion = 2;

/** What a checkpoint holds, with tensors already on the host. `optimizer` maps a parameter name to its momentum buffer. */
export interface HostCheckpoint {
  model: ReadonlyMap<string, HostTensor>;
  optimizer?: ReadonlyMap<string, HostTensor>;
  masks?: ReadonlyMap<string, Uint32Array>;
  /** Epoch, step, schedule, RNG and loader state, config...: anything JSON can hold, plus NaN and ±Infinity (-0 reads back as 0). */
  meta: Record<string, unknown>;
}

/** As HostCheckpoint, with GPU tensors allowed: saving reads them all back in one batch. */
export interface CheckpointState {
  model: ReadonlyMap<string, Tensor | HostTensor>;
  optimizer?: ReadonlyMap<string, Tensor | HostTensor>;
  masks?: ReadonlyMap<string, Uint32Array>;
  meta: Record<string, unknown>;
}

export interface LoadedCheckpoint {
  model: Map<string, HostTensor>;
  optimizer: Map<string, HostTensor>;
  masks: Map<string, Uint32Array>;
  meta: Record<string, unknown>;
}

/** A checkpoint that cannot be written or read; the message names the file (or "checkpoint") and what is wrong. */
export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

const optimizerPrefix = 'optimizer.';
const momentumSuffix = '.momentum_buffer';
const masksPrefix = 'masks.';
const versionKey = 'format_version';
/** Non-finite numbers, which JSON cannot hold, are written as {"$float": "NaN" | "Infinity" | "-Infinity"}. */
const floatTag = '$float';

/** Copies every GPU tensor of `state` to the host with one submit (gpu().downloadMany). `source` prefixes errors. */
export async function checkpointToHost(state: CheckpointState, source = 'checkpoint'): Promise<HostCheckpoint> {
  const pending: { into: Map<string, HostTensor>; name: string; tensor: Tensor }[] = [];
  const toHost = (section: string, tensors: ReadonlyMap<string, Tensor | HostTensor>): Map<string, HostTensor> => {
    const out = new Map<string, HostTensor>();
    for (const [name, value] of tensors) {
      if (!(value instanceof Tensor)) {
        out.set(name, value);
      } else if (value.released) {
        throw new CheckpointError(`${source}: cannot save ${section} tensor "${name}" (${value.describe()}): it was released`);
      } else {
        // Set now so the map keeps the caller's order; the data arrives below.
        out.set(name, { dtype: value.dtype, shape: [...value.shape], data: arrayOf(value.dtype, new ArrayBuffer(0)) });
        if (value.size > 0) pending.push({ into: out, name, tensor: value });
      }
    }
    return out;
  };
  const model = toHost('model', state.model);
  const optimizer = state.optimizer && toHost('optimizer', state.optimizer);
  if (pending.length > 0) {
    const buffers = await gpu().downloadMany(pending.map(({ tensor }) => ({ buffer: tensor.buffer, bytes: tensor.size * 4 })));
    pending.forEach(({ into, name, tensor }, i) => {
      into.set(name, { dtype: tensor.dtype, shape: [...tensor.shape], data: arrayOf(tensor.dtype, buffers[i]) });
    });
  }
  return { model, optimizer, masks: state.masks, meta: state.meta };
}

/** Serialises a checkpoint to safetensors bytes. `source` names the destination in error messages. */
export function encodeCheckpoint(state: HostCheckpoint, source = 'checkpoint'): Uint8Array {
  const fail = (message: string): never => {
    throw new CheckpointError(`${source}: ${message}`);
  };
  const entries: Record<string, HostTensor> = {};
  for (const [name, tensor] of state.model) {
    if (name.startsWith(optimizerPrefix) || name.startsWith(masksPrefix)) {
      fail(`model tensor "${name}" clashes with the reserved prefixes "${optimizerPrefix}" and "${masksPrefix}"`);
    }
    entries[name] = tensor;
  }
  for (const [param, buffer] of state.optimizer ?? []) {
    checkMatchesParameter(state.model, param, buffer.shape, fail);
    entries[optimizerPrefix + param + momentumSuffix] = buffer;
  }
  for (const [conv, mask] of state.masks ?? []) {
    if (!(mask instanceof Uint32Array)) fail(`mask "${conv}" must be a Uint32Array, got ${describeValue(mask)}`);
    checkMask(state.model, conv, mask, fail);
    // I32, which every PyTorch reads (safetensors maps U32 only from torch 2.3 on).
    entries[masksPrefix + conv] = { dtype: 'i32', shape: [mask.length], data: Int32Array.from(mask) };
  }
  const metadata: Record<string, string> = { [versionKey]: String(checkpointFormatVersion) };
  for (const [key, value] of Object.entries(state.meta)) {
    if (key === versionKey) fail(`meta key "${versionKey}" is reserved for the file format`);
    if (value === undefined) continue;
    metadata[key] = JSON.stringify(toJson(value, key, fail));
  }
  try {
    return encodeSafetensors(entries, metadata);
  } catch (error) {
    if (error instanceof SafetensorsError) fail(error.message);
    throw error;
  }
}

/** Parses and validates checkpoint bytes. `source` (the file name) prefixes every error message. */
export function decodeCheckpoint(bytes: Uint8Array, source = 'checkpoint'): LoadedCheckpoint {
  const fail = (message: string): never => {
    throw new CheckpointError(`${source}: ${message}`);
  };
  let decoded;
  try {
    decoded = decodeSafetensors(bytes);
  } catch (error) {
    if (error instanceof SafetensorsError) fail(`not a valid safetensors file: ${error.message}`);
    throw error;
  }
  const { tensors, metadata } = decoded;

  const version = metadata[versionKey];
  // A plain state dict (safetensors.torch.save_file(model.state_dict(), ...)): weights only, its metadata not ours.
  if (version === undefined) return { model: new Map(tensors), optimizer: new Map(), masks: new Map(), meta: {} };
  if (!/^[1-9][0-9]*$/.test(version)) fail(`"${versionKey}" must be a positive integer, got ${JSON.stringify(version)}`);
  if (Number(version) > checkpointFormatVersion) {
    fail(`written in checkpoint format ${version}, but this build reads formats up to ${checkpointFormatVersion}`);
  }

  const model = new Map<string, HostTensor>();
  const optimizer = new Map<string, HostTensor>();
  const masks = new Map<string, Uint32Array>();
  for (const [name, tensor] of tensors) {
    if (name.startsWith(masksPrefix)) continue;
    if (!name.startsWith(optimizerPrefix)) {
      model.set(name, tensor);
    } else if (name.endsWith(momentumSuffix)) {
      optimizer.set(name.slice(optimizerPrefix.length, -momentumSuffix.length), tensor);
    } else {
      fail(`unexpected optimizer tensor "${name}" (expected ${optimizerPrefix}<param>${momentumSuffix})`);
    }
  }
  for (const [param, buffer] of optimizer) checkMatchesParameter(model, param, buffer.shape, fail);
  for (const [name, tensor] of tensors) {
    if (!name.startsWith(masksPrefix)) continue;
    const conv = name.slice(masksPrefix.length);
    if ((tensor.dtype !== 'i32' && tensor.dtype !== 'u32') || tensor.shape.length !== 1) {
      fail(`mask "${name}" must be I32 (or U32) of rank 1, got ${tensor.dtype} ${formatShape(tensor.shape)}`);
    }
    const signed = tensor.data instanceof Int32Array ? tensor.data : null;
    const negative = signed ? signed.findIndex((v) => v < 0) : -1;
    if (negative >= 0) fail(`mask for "${conv}" must hold 0 or 1, got ${signed![negative]} at filter ${negative}`);
    const mask = signed ? Uint32Array.from(signed) : (tensor.data as Uint32Array);
    checkMask(model, conv, mask, fail);
    masks.set(conv, mask);
  }

  const meta: Record<string, unknown> = {};
  for (const [key, text] of Object.entries(metadata)) {
    if (key === versionKey) continue;
    try {
      meta[key] = JSON.parse(text, (_, value: unknown) => fromJson(value));
    } catch (error) {
      fail(`meta "${key}" is not valid JSON (${(error as Error).message}): ${text.slice(0, 80)}`);
    }
  }
  return { model, optimizer, masks, meta };
}

function checkMatchesParameter(
  model: ReadonlyMap<string, HostTensor>,
  param: string,
  shape: readonly number[],
  fail: (message: string) => never,
): void {
  const target = model.get(param);
  if (!target) fail(`optimizer state for "${param}", but the model has no tensor of that name`);
  else if (!sameShape(target.shape, shape)) {
    fail(`momentum buffer of "${param}" has shape ${formatShape(shape)}, the parameter has ${formatShape(target.shape)}`);
  }
}

/** A mask has one 0/1 entry per output filter of `<conv>.weight`. */
function checkMask(model: ReadonlyMap<string, HostTensor>, conv: string, mask: Uint32Array, fail: (message: string) => never): void {
  const weight = model.get(`${conv}.weight`);
  if (!weight) fail(`mask for "${conv}", but the model has no tensor "${conv}.weight"`);
  else if (weight.shape[0] !== mask.length) {
    fail(`mask for "${conv}" has ${mask.length} entries, but "${conv}.weight" has ${weight.shape[0]} filters (shape ${formatShape(weight.shape)})`);
  }
  const bad = mask.findIndex((v) => v > 1);
  if (bad >= 0) fail(`mask for "${conv}" must hold 0 or 1, got ${mask[bad]} at filter ${bad}`);
}

/** Checks that `value` survives JSON, tagging non-finite numbers; `path` (meta.x.y[2]) locates a bad value. */
function toJson(value: unknown, path: string, fail: (message: string) => never): unknown {
  if (typeof value === 'number') return Number.isFinite(value) ? value : { [floatTag]: String(value) };
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return value;
  if (Array.isArray(value)) {
    return value.map((v, i) => {
      if (v === undefined) fail(`meta ${path}[${i}] is undefined, which JSON cannot hold`);
      return toJson(v, `${path}[${i}]`, fail);
    });
  }
  if (typeof value === 'object' && [Object.prototype, null].includes(Object.getPrototypeOf(value))) {
    const out: Record<string, unknown> = {};
    const entries = Object.entries(value).filter(([, v]) => v !== undefined);
    if (entries.length === 1 && entries[0][0] === floatTag) fail(`meta ${path}: the key "${floatTag}" is reserved`);
    for (const [k, v] of entries) out[k] = toJson(v, `${path}.${k}`, fail);
    return out;
  }
  return fail(`meta ${path} is ${describeValue(value)}, which JSON cannot hold; use plain objects, arrays, numbers, strings or booleans`);
}

function fromJson(value: unknown): unknown {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const keys = Object.keys(value);
    const tag = (value as Record<string, unknown>)[floatTag];
    if (keys.length === 1 && typeof tag === 'string' && ['NaN', 'Infinity', '-Infinity'].includes(tag)) return Number(tag);
  }
  return value;
}

function describeValue(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (typeof value === 'object') return `a ${value.constructor?.name ?? 'null-prototype object'}`;
  return `a ${typeof value}`;
}

function arrayOf(dtype: HostTensor['dtype'], buffer: ArrayBuffer): HostArray {
  return dtype === 'f32' ? new Float32Array(buffer) : dtype === 'u32' ? new Uint32Array(buffer) : new Int32Array(buffer);
}
