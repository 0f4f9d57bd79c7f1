/**
 * The demo page: the engine (src/, through src/browser.ts) on navigator.gpu. Adapter and limits, a
 * benchmark, a few training steps of a CIFAR ResNet-20 with a live loss chart, SFP masks and predictions,
 * compaction of the masked model (plan, equivalence check, predictions and timings side by side), safetensors
 * checkpoints in and out, and the kernel self-check that test/browser/page.test.ts drives through window.sfp.
 */
import { gpu, init, noGrad, scope, Tensor, SGD, softmaxCrossEntropy, type GpuRuntime } from '../src/browser.js';
import { CifarResNet, cifarResNetShapeOf } from '../src/models/resnet.js';
import type { Module } from '../src/nn/module.js';
import { FilterMasks, FilterPruner } from '../src/prune/sfp.js';
import { buildCompactionPlan } from '../src/prune/plan.js';
import {
  applyMasks,
  checkEquivalence,
  compactModel,
  decodeCompactModel,
  equivalenceProblem,
  isCompactModel,
  masksAppliedLine,
  zeroMaskedFilters,
  type CompactResNet,
  type EquivalenceReport,
  type HostImages,
} from '../src/prune/compact.js';
import { compactFlops, compactParameters } from '../src/prune/flops.js';
import { DataLoader, normalizeImages } from '../src/data/loader.js';
import { CIFAR10_CLASSES, IMAGE_BYTES, parseCifar10Batch, type ImageDataset } from '../src/data/cifar10.js';
import { syntheticCifar10 } from '../src/data/synthetic.js';
import { checkpointToHost, decodeCheckpoint, encodeCheckpoint } from '../src/io/checkpoint.js';
import { LossChart } from './chart.js';
import { runBenchmarks } from './bench.js';
import { runChecks, type ChecksReport } from './checks.js';
import { recalibrateBatchNorm } from '../src/train/recalibrate.js';
import { LoaderSource } from '../src/train/sources.js';

/** What the browser test (and a curious user in the console) can reach. */
interface SfpHandle {
  ready: boolean;
  error: string | null;
  adapter: Record<string, unknown> | null;
  checks(): Promise<ChecksReport>;
  /** Runs `steps` training steps with the page's current settings; resolves with the losses. */
  train(steps?: number, batch?: number): Promise<number[]>;
  /** The "Apply SFP masks" button. */
  prune(): Promise<{ pruned: number; total: number; changed: number }>;
  /** Evaluation-mode logits of the current model for images [n, 3, 32, 32] (already normalised). */
  forward(x: number[], shape: number[]): Promise<number[]>;
  /** The same for the compact model last loaded through the checkpoint input. */
  forwardCompact(x: number[], shape: number[]): Promise<number[]>;
  /** GPU memory: bytes held by tensors, bytes pooled for reuse, idle readback buffers. */
  memory(): { pooledBytes: number; stagingBuffers: number; liveBytes: number };
  /** The "Compact the pruned model" button (after prune()); optional overrides of the section's inputs. */
  compact(options?: Partial<CompactSettings>): Promise<CompactSummary>;
  /** What the last compaction (button or compact()) showed; null before the first. */
  lastCompact: CompactSummary | null;
}

interface CompactSettings {
  /** Test images for the equivalence check (batches of 8). */
  images: number;
  /** Batch of the timed forward passes. */
  batch: number;
  /** Timed forward passes per model (interleaved), after one warm-up each. */
  reps: number;
}

/** What the compaction section shows, as numbers. */
interface CompactSummary {
  equivalence: EquivalenceReport;
  /** Non-zero weights found in masked filters (training after the masks regrows them) and zeroed again. */
  regrown: number;
  plan: string;
  params: { dense: number; compact: number; compactCounted: number };
  flops: { dense: number; compact: number };
  /** Same 8 images as the SFP section: predictions of both models, and how many differ. */
  predictions: { dense: number[]; compact: number[]; differ: number };
  timing: { batch: number; reps: number; denseMs: number; compactMs: number; denseSamples: number[]; compactSamples: number[] };
  speedup: { real: number; theoretical: number };
  /** Wall milliseconds of each phase (plan and compact model, equivalence check, predictions, timing) and new GPU pipelines. */
  phases: { compactMs: number; checkMs: number; predictMs: number; timingMs: number; pipelines: number };
}
declare global {
  interface Window {
    sfp: SfpHandle;
  }
}

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const status = $('status');
const busy = new Set<string>();

function setStatus(text: string, error = false): void {
  status.textContent = text;
  status.classList.toggle('error', error);
}

function message(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/** Runs a button's action once at a time, with errors shown instead of lost in the console. */
function action(buttonId: string, run: () => Promise<void>): void {
  const button = $<HTMLButtonElement>(buttonId);
  button.addEventListener('click', () => void guarded(buttonId, run));
}

async function guarded<T>(name: string, run: () => Promise<T>): Promise<T | undefined> {
  if (busy.size) {
    setStatus(`busy (${[...busy].join(', ')}): wait for it to finish`);
    return undefined;
  }
  busy.add(name);
  document.querySelectorAll<HTMLButtonElement | HTMLInputElement | HTMLSelectElement>('[data-ready]').forEach((b) => (b.disabled = true));
  try {
    return await run();
  } catch (error) {
    // Shown and logged here; not rethrown, since every caller is an event listener with no one to catch it.
    setStatus(message(error), true);
    console.error(error);
    return undefined;
  } finally {
    busy.delete(name);
    document.querySelectorAll<HTMLButtonElement | HTMLInputElement | HTMLSelectElement>('[data-ready]').forEach((b) => (b.disabled = false));
  }
}

/** An action for window.sfp: as a click runs it, but a refusal (busy) or a failure rejects, with the status line's words. */
async function settled<T>(name: string, run: () => Promise<T>): Promise<T> {
  const result = await guarded(name, run);
  if (result === undefined) throw new Error(`${name} did not finish: ${status.textContent}`);
  return result;
}

function row(table: HTMLElement, cells: (string | number)[], header = false): void {
  const tr = document.createElement('tr');
  cells.forEach((c, i) => {
    const td = document.createElement(header || i === 0 ? 'th' : 'td');
    td.textContent = String(c);
    if (typeof c === 'number') td.className = 'num';
    tr.append(td);
  });
  table.append(tr);
}

function formatBytes(n: number): string {
  return n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(n % 2 ** 30 ? 2 : 0)} GiB` : n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(0)} MiB` : `${n} B`;
}

// ---------------------------------------------------------------- adapter

function showAdapter(rt: GpuRuntime): Record<string, unknown> {
  const info = rt.adapterInfo;
  const l = rt.limits;
  const features = [...rt.device.features].sort();
  const summary = {
    vendor: info.vendor,
    architecture: info.architecture,
    description: info.description,
    kernels: rt.subgroupSize ? `subgroup (size ${rt.subgroupSize})` : 'portable',
    features,
    limits: {
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
      maxComputeWorkgroupSizeY: l.maxComputeWorkgroupSizeY,
      maxComputeWorkgroupSizeZ: l.maxComputeWorkgroupSizeZ,
      maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
    },
  };
  const infoTable = $('adapter-info');
  row(infoTable, ['vendor', info.vendor || '(empty)']);
  row(infoTable, ['architecture', info.architecture || '(empty)']);
  row(infoTable, ['description', info.description || '(empty: Chromium hides it without --enable-webgpu-developer-features)']);
  row(infoTable, ['kernels', summary.kernels]);
  row(infoTable, ['shader-f16', features.includes('shader-f16') ? 'yes' : 'no']);
  row(infoTable, ['features', features.join(', ')]);
  const limits = $('adapter-limits');
  for (const [name, value] of Object.entries(summary.limits)) {
    row(limits, [name, /Size$/.test(name) && value > 65536 ? formatBytes(value) : value]);
  }
  return summary;
}

// ---------------------------------------------------------------- benchmark

action('bench-run', async () => {
  const table = $('bench-results');
  table.replaceChildren();
  row(table, ['kernel', 'ms (median of 5)', 'GFLOP/s'], true);
  setStatus('benchmarking…');
  await runBenchmarks({}, (r) => row(table, [r.name, Number(r.ms.toFixed(2)), Number(r.gflops.toFixed(2))]));
  // The benchmark's shapes are not the training's: its pooled buffers would stay idle.
  gpu().releasePooledMemory();
  setStatus('benchmark done');
});

// ---------------------------------------------------------------- data and model

let dataset: ImageDataset | null = null;
let datasetName = '';
let model: CifarResNet | null = null;
let optimizer: SGD | null = null;
let pruner: FilterPruner | null = null;
/** The masks of a loaded training checkpoint (an SFP run's), until the page computes its own. */
let checkpointMasks: FilterMasks | null = null;

/** The model's masks: the page's last SFP masking, else those of the checkpoint it was loaded from. */
function currentMasks(): FilterMasks | null {
  return pruner?.masks ?? checkpointMasks;
}
let loader: DataLoader | null = null;
const chart = new LossChart($('train-chart'));

async function getDataset(): Promise<ImageDataset> {
  if (dataset) return dataset;
  // Only `npm run dev` and `npm run preview:web` serve the batch; another server answers 404, or (a host that
  // answers every path with the page) 200 with HTML. Either way the seeded synthetic set keeps the page usable.
  const response = await fetch('./data/test_batch.bin').catch(() => null);
  let why: string;
  if (!response) why = 'the server has no data/test_batch.bin: the request failed';
  else if (!response.ok) why = `the server has no data/test_batch.bin: HTTP ${response.status}`;
  else {
    try {
      dataset = parseCifar10Batch(new Uint8Array(await response.arrayBuffer()), 'test_batch.bin');
      datasetName = 'CIFAR-10 test_batch.bin (from the server)';
      return dataset;
    } catch (error) {
      why = `the server's data/test_batch.bin is not a CIFAR-10 batch: ${message(error)}`;
    }
  }
  dataset = syntheticCifar10(2000, 0);
  datasetName = `synthetic CIFAR-like images (${why}); choose a CIFAR-10 batch file in the training section for real images`;
  return dataset;
}

$<HTMLInputElement>('train-file').addEventListener('change', (event) => {
  const input = event.target as HTMLInputElement;
  const file = input.files?.[0];
  // Cleared, so choosing the same file again fires another change.
  input.value = '';
  if (!file) return;
  void guarded('load data', async () => {
    dataset = parseCifar10Batch(new Uint8Array(await file.arrayBuffer()), file.name);
    datasetName = `${file.name} (uploaded)`;
    loader = null;
    setStatus(`loaded ${dataset.count} images from ${file.name}`);
  });
});

function widths(): number[] {
  return $<HTMLSelectElement>('train-widths').value.split(',').map(Number);
}

function disposeModel(): void {
  if (!model) return;
  model.dispose();
  optimizer?.dispose();
  pruner?.dispose();
  model = null;
  optimizer = null;
  pruner = null;
  checkpointMasks = null;
  disposeCompact();
  // Another model's shapes would not reuse the pooled buffers: give them back to the GPU.
  gpu().releasePooledMemory();
}

/** Makes `m` the page's model, disposing the one before (and its optimizer, masks and compact model). */
function installModel(m: CifarResNet): CifarResNet {
  disposeModel();
  model = m;
  chart.clear();
  return m;
}

function newModel(depth = 20, ws = widths(), classes = 10): CifarResNet {
  return installModel(new CifarResNet(depth, classes, 0, ws));
}

function getOptimizer(m: CifarResNet): SGD {
  optimizer ??= new SGD(m.parameters(), { lr: 0.05, momentum: 0.9, weightDecay: 5e-4 });
  return optimizer;
}

// ---------------------------------------------------------------- training

// A new choice of widths starts a new ResNet-20 at the next training; until then a loaded model trains as it is.
// Disabled while an action runs (it is one of the ready controls), since dropping the model mid-action breaks it.
$<HTMLSelectElement>('train-widths').addEventListener('change', () => void guarded('widths', async () => disposeModel()));

async function train(steps: number, batchSize: number): Promise<number[]> {
  const data = await getDataset();
  const m = model ?? newModel(20, widths());
  const opt = getOptimizer(m);
  const lr = Number($<HTMLInputElement>('train-lr').value);
  if (!(Number.isFinite(lr) && lr > 0)) throw new Error(`the learning rate must be a number above 0, got '${$<HTMLInputElement>('train-lr').value}'`);
  opt.lr = lr;
  if (!loader || loader.batchSize !== batchSize || loader.dataset !== data) {
    // Another batch size needs buffers of other sizes: the old ones would stay pooled.
    if (loader && loader.batchSize !== batchSize) gpu().releasePooledMemory();
    loader = new DataLoader(data, { batchSize, shuffle: true, augment: true, dropLast: true, seed: 0 });
  }
  m.train();
  const losses: number[] = [];
  const started = performance.now();
  const out = $('train-status');
  for (let step = 0; step < steps; step++) {
    const batch = loader.next();
    const loss = scope(() => {
      const x = Tensor.fromArray(batch.x, [batch.size, 3, 32, 32]);
      const y = Tensor.fromArray(batch.y, [batch.size], 'u32');
      const l = softmaxCrossEntropy(m.forward(x), y);
      l.backward();
      opt.step();
      opt.zeroGrad();
      return l;
    });
    const value = await loss.item();
    loss.dispose();
    losses.push(value);
    chart.push(value);
    const seconds = (performance.now() - started) / 1000;
    out.textContent =
      `step ${step + 1}/${steps}: loss ${value.toFixed(4)}\n` +
      `${((batch.size * (step + 1)) / seconds).toFixed(1)} img/s, ${(seconds / (step + 1)).toFixed(2)} s/step\n` +
      `ResNet-${m.depth} ${m.widths.join('/')}, batch ${batchSize}, ${opt.stepCount} steps in all\n${datasetName}`;
    out.style.whiteSpace = 'pre-line';
  }
  return losses;
}

action('train-run', async () => {
  // The inputs' own min and max (index.html), which typing past them does not enforce.
  const steps = Math.min(10_000, Math.max(1, Math.floor(Number($<HTMLInputElement>('train-steps').value) || 20)));
  const batch = Math.min(256, Math.max(2, Math.floor(Number($<HTMLInputElement>('train-batch').value) || 32)));
  setStatus(`training ${steps} steps…`);
  const losses = await train(steps, batch);
  setStatus(`trained ${steps} steps: loss ${losses[0].toFixed(3)} → ${losses.at(-1)!.toFixed(3)}`);
});

action('train-reset', async () => {
  newModel();
  $('train-status').textContent = '';
  setStatus('new model (seed 0)');
});

// ---------------------------------------------------------------- pruning and predictions

async function predict(m: Module, data: ImageDataset, wanted: number): Promise<{ labels: number[]; probs: Float32Array[] }> {
  // A data file may hold fewer images than the page shows.
  const count = Math.min(wanted, data.count);
  const x = normalizeImages(data.images.subarray(0, count * IMAGE_BYTES), count);
  const wasTraining = m.training;
  m.eval();
  const logits = await scope(() => noGrad(() => m.forward(Tensor.fromArray(x, [count, 3, 32, 32])).keep()));
  const values = new Float32Array(await logits.toArray());
  logits.dispose();
  m.train(wasTraining);
  const classes = values.length / count;
  const probs: Float32Array[] = [];
  const labels: number[] = [];
  for (let i = 0; i < count; i++) {
    const row = values.subarray(i * classes, (i + 1) * classes);
    const max = Math.max(...row);
    const e = row.map((v) => Math.exp(v - max));
    const s = e.reduce((a, b) => a + b, 0);
    probs.push(e.map((v) => v / s));
    labels.push(row.indexOf(max));
  }
  return { labels, probs };
}

function imageCanvas(data: ImageDataset, index: number): HTMLCanvasElement {
  const canvas = document.createElement('canvas');
  canvas.width = 32;
  canvas.height = 32;
  const ctx = canvas.getContext('2d')!;
  const image = ctx.createImageData(32, 32);
  const src = data.images.subarray(index * IMAGE_BYTES, (index + 1) * IMAGE_BYTES);
  for (let p = 0; p < 1024; p++) {
    image.data[4 * p] = src[p];
    image.data[4 * p + 1] = src[1024 + p];
    image.data[4 * p + 2] = src[2048 + p];
    image.data[4 * p + 3] = 255;
  }
  ctx.putImageData(image, 0, 0);
  return canvas;
}

function showPredictions(title: string, data: ImageDataset, before: { labels: number[] } | null, after: { labels: number[]; probs: Float32Array[] }): void {
  const names = data.classNames ?? CIFAR10_CLASSES;
  const container = $('predictions');
  container.replaceChildren();
  const heading = document.createElement('p');
  heading.textContent = title;
  const list = document.createElement('div');
  list.className = 'predictions';
  after.labels.forEach((label, i) => {
    const cell = document.createElement('div');
    cell.className = 'prediction';
    const truth = data.labels[i];
    const text = document.createElement('div');
    text.innerHTML =
      `<b class="${label === truth ? 'ok' : 'bad'}">${names[label]}</b> ${(100 * after.probs[i][label]).toFixed(0)}%` +
      (before ? `<br>before: ${names[before.labels[i]]}` : '') +
      `<br><small>true: ${names[truth]}</small>`;
    cell.append(imageCanvas(data, i), text);
    list.append(cell);
  });
  container.append(heading, list);
}

/** Masks the current model's filters with FilterPruner (rate 0.3) and shows predictions before and after. */
/** Batches of 32 the BN statistics are re-estimated on after masking. */
const RECALIBRATION_BATCHES = 4;

async function applySfp(): Promise<{ pruned: number; total: number; changed: number }> {
  const data = await getDataset();
  const m = model ?? newModel();
  const before = await predict(m, data, 8);
  pruner?.dispose();
  pruner = new FilterPruner(m, { rate: 0.3 });
  const masks = await pruner.computeMasks();
  pruner.apply(masks);
  // As train --bn-recalibrate: after a few steps, and after masking, the running statistics describe another
  // network, and the evaluation-mode logits here and in compaction's check would be far off (1e7 after 3 steps).
  const recalibrated = recalibrateBatchNorm(m, new LoaderSource(data, { batchSize: 32, train: true, seed: 1 }), RECALIBRATION_BATCHES);
  const after = await predict(m, data, 8);
  let pruned = 0;
  let total = 0;
  for (const [name, layer] of masks.layers) {
    total += layer.mask.length;
    pruned += layer.mask.length - masks.kept(name);
  }
  $('prune-masks').textContent = `${pruned}/${total} filters zeroed in ${masks.layers.size} convs\n${masks.toString()}`;
  const changed = after.labels.filter((l, i) => l !== before.labels[i]).length;
  showPredictions(
    `Predictions of the masked model (${optimizer?.stepCount ?? 0} training steps so far; ${changed}/8 changed by the masks). Training again continues soft pruning: zeroed filters can grow back.`,
    data,
    before,
    after,
  );
  setStatus(`SFP masks applied: ${pruned}/${total} filters zeroed; BN statistics re-estimated on ${recalibrated} batches`);
  return { pruned, total, changed };
}

action('prune-run', async () => void (await applySfp()));

// ---------------------------------------------------------------- compaction

let compact: CompactResNet | null = null;

function disposeCompact(): void {
  if (!compact) return;
  compact.dispose();
  compact = null;
}

function compactSettings(options: Partial<CompactSettings> = {}): CompactSettings {
  const int = (id: string, fallback: number, min: number, max: number) =>
    Math.min(max, Math.max(min, Math.floor(Number($<HTMLInputElement>(id).value) || fallback)));
  return {
    images: options.images ?? int('compact-images', 32, 1, 10_000),
    batch: options.batch ?? int('compact-batch', 16, 1, 256),
    reps: options.reps ?? int('compact-reps', 5, 1, 50),
  };
}

/** `count` test images from the start of the data set, in batches of 8, normalised, with labels. */
function* testBatches(data: ImageDataset, count: number, batchSize = 8): Generator<HostImages> {
  const total = Math.min(count, data.count);
  for (let start = 0; start < total; start += batchSize) {
    const n = Math.min(batchSize, total - start);
    yield {
      x: normalizeImages(data.images.subarray(start * IMAGE_BYTES, (start + n) * IMAGE_BYTES), n),
      shape: [n, 3, 32, 32],
      y: Uint32Array.from(data.labels.subarray(start, start + n)),
    };
  }
}

const median = (values: number[]) => {
  const s = [...values].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** One eval-mode forward of `m` on `x`, from an idle GPU to the engine's sync after it: milliseconds. */
async function timedForward(m: Module, x: Tensor): Promise<number> {
  await gpu().sync();
  const start = performance.now();
  noGrad(() =>
    scope(() => {
      m.forward(x);
    }),
  );
  await gpu().sync();
  return performance.now() - start;
}

/** Both models on the same batch, one warm-up each, then `reps` forwards each in alternating order. */
async function timeBoth(dense: Module, small: Module, data: ImageDataset, batch: number, reps: number): Promise<CompactSummary['timing']> {
  const n = Math.min(batch, data.count);
  const x = Tensor.fromArray(normalizeImages(data.images.subarray(0, n * IMAGE_BYTES), n), [n, 3, 32, 32]);
  const wasTraining = dense.training;
  dense.eval();
  const denseSamples: number[] = [];
  const compactSamples: number[] = [];
  try {
    await timedForward(dense, x);
    await timedForward(small, x);
    for (let r = 0; r < reps; r++) {
      // Alternate which model goes first, so neither always follows the other.
      if (r % 2 === 0) {
        denseSamples.push(await timedForward(dense, x));
        compactSamples.push(await timedForward(small, x));
      } else {
        compactSamples.push(await timedForward(small, x));
        denseSamples.push(await timedForward(dense, x));
      }
    }
  } finally {
    x.dispose();
    dense.train(wasTraining);
  }
  return { batch: n, reps, denseMs: median(denseSamples), compactMs: median(compactSamples), denseSamples, compactSamples };
}

function showComparison(data: ImageDataset, dense: { labels: number[]; probs: Float32Array[] }, small: { labels: number[]; probs: Float32Array[] }): void {
  const names = data.classNames ?? CIFAR10_CLASSES;
  const container = $('compact-predictions');
  container.replaceChildren();
  const heading = document.createElement('p');
  const differ = dense.labels.filter((l, i) => l !== small.labels[i]).length;
  heading.textContent = `The same ${dense.labels.length} images as the SFP section: dense (masked) model and compact model (${differ} predictions differ).`;
  const list = document.createElement('div');
  list.className = 'predictions';
  const guess = (p: { labels: number[]; probs: Float32Array[] }, i: number, truth: number) =>
    `<b class="${p.labels[i] === truth ? 'ok' : 'bad'}">${names[p.labels[i]]}</b> ${(100 * p.probs[i][p.labels[i]]).toFixed(1)}%`;
  dense.labels.forEach((_, i) => {
    const truth = data.labels[i];
    const cell = document.createElement('div');
    cell.className = 'prediction pair';
    const text = document.createElement('div');
    text.innerHTML = `dense: ${guess(dense, i, truth)}<br>compact: ${guess(small, i, truth)}<br><small>true: ${names[truth]}</small>`;
    cell.append(imageCanvas(data, i), text);
    list.append(cell);
  });
  container.append(heading, list);
}

/**
 * Compacts the masked model: re-zeroes the masked filters (training after the masks regrows them), builds the
 * plan, the compact model, checks it against the masked model on test images, shows both models' predictions
 * and times both.
 */
async function compactPruned(options: Partial<CompactSettings> = {}): Promise<CompactSummary> {
  const m = model;
  const masks = currentMasks();
  if (!m || !masks) throw new Error('no SFP masks yet: apply the SFP masks (section above) or load a checkpoint that has masks, then compact');
  const settings = compactSettings(options);
  const data = await getDataset();
  setStatus('compacting: building the plan…');
  const pipelines0 = gpu().stats().pipelines;
  let t = performance.now();
  const lap = () => {
    const now = performance.now();
    const ms = now - t;
    t = now;
    return ms;
  };
  disposeCompact();
  window.sfp.lastCompact = null;
  const maskMap = masks.byName();
  const regrown = await zeroMaskedFilters(m, maskMap);
  const plan = await buildCompactionPlan(m, maskMap);
  const printed = plan.toString();
  $('compact-plan').textContent = printed;
  const small = await compactModel(m, plan, { inputSize: [32, 32] });
  compact = small;
  const compactMs = lap();

  setStatus(`compacting: equivalence check on ${settings.images} images…`);
  const equivalence = await checkEquivalence(m, small, testBatches(data, settings.images));
  const checkMs = lap();
  const densePred = await predict(m, data, 8);
  const compactPred = await predict(small, data, 8);
  showComparison(data, densePred, compactPred);
  const predictMs = lap();

  setStatus(`compacting: timing both models (batch ${settings.batch}, ${settings.reps} repetitions each)…`);
  const timing = await timeBoth(m, small, data, settings.batch, settings.reps);
  const phases = { compactMs, checkMs, predictMs, timingMs: lap(), pipelines: gpu().stats().pipelines - pipelines0 };
  // The check's and the timing's batch sizes are not the training's.
  gpu().releasePooledMemory();

  const kept = plan.keptCounts();
  const streams = plan.streamWidths();
  const flops = { dense: compactFlops(m).total, compact: compactFlops(m, kept, streams).total };
  const params = { dense: compactParameters(m), compact: small.parameterCount(), compactCounted: compactParameters(m, kept, streams) };
  const summary: CompactSummary = {
    equivalence,
    regrown,
    plan: printed,
    params,
    flops,
    predictions: { dense: densePred.labels, compact: compactPred.labels, differ: densePred.labels.filter((l, i) => l !== compactPred.labels[i]).length },
    timing,
    speedup: { real: timing.denseMs / timing.compactMs, theoretical: flops.dense / flops.compact },
    phases,
  };
  window.sfp.lastCompact = summary;

  const table = $('compact-summary');
  table.replaceChildren();
  const pct = (a: number, b: number) => `−${(100 * (1 - b / a)).toFixed(1)} %`;
  const e = equivalence;
  row(table, ['', 'dense (masked)', 'compact', ''], true);
  row(table, ['parameters', params.dense.toLocaleString('en'), params.compact.toLocaleString('en'), pct(params.dense, params.compact)]);
  row(table, ['FLOPs / image', `${(flops.dense / 1e6).toFixed(2)} M`, `${(flops.compact / 1e6).toFixed(2)} M`, pct(flops.dense, flops.compact)]);
  row(table, [`forward, batch ${timing.batch} (median of ${timing.reps})`, `${timing.denseMs.toFixed(1)} ms`, `${timing.compactMs.toFixed(1)} ms`, '']);
  row(table, ['speedup: real (time)', '', `${summary.speedup.real.toFixed(2)}×`, '']);
  row(table, ['speedup: theoretical (FLOPs)', '', `${summary.speedup.theoretical.toFixed(2)}×`, '']);
  row(table, [`accuracy on ${e.images} images of ${datasetName}`, `${((100 * e.maskedCorrect) / e.images).toFixed(1)} %`, `${((100 * e.compactCorrect) / e.images).toFixed(1)} %`, '']);
  row(table, ['max |Δlogit|', '', `${e.maxAbsDiff.toExponential(2)}`, `logits up to ${e.maxAbsLogit.toFixed(2)}`]);
  row(table, ['predictions', '', e.predictionsEqual ? `identical (${e.images}/${e.images})` : `${e.predictionMismatches}/${e.images} differ`, '']);
  if (regrown) row(table, ['re-zeroed', '', `${regrown} regrown weights`, 'training after the masks']);
  table.querySelectorAll('td').forEach((td) => td.classList.add('num'));
  // The rule `compact` applies in Node.
  const problem = equivalenceProblem(e);
  setStatus(
    `compacted: ${params.dense} → ${params.compact} parameters, max |Δlogit| ${e.maxAbsDiff.toExponential(2)}, ` +
      `${problem === null ? 'same predictions' : `NOT equivalent (${problem})`}; ${summary.speedup.real.toFixed(2)}× faster (FLOPs: ${summary.speedup.theoretical.toFixed(2)}×)`,
    problem !== null,
  );
  return summary;
}

action('compact-run', async () => void (await compactPruned()));

// ---------------------------------------------------------------- checkpoints

$<HTMLInputElement>('ckpt-file').addEventListener('change', (event) => {
  const input = event.target as HTMLInputElement;
  const file = input.files?.[0];
  input.value = '';
  if (!file) return;
  void guarded('load checkpoint', async () => {
    const bytes = new Uint8Array(await file.arrayBuffer());
    const checkpoint = decodeCheckpoint(bytes, file.name);
    if (isCompactModel(checkpoint.meta)) {
      await showCompactModel(file.name, decodeCompactModel(bytes, file.name), checkpoint.meta);
      return;
    }
    const arch = cifarResNetShapeOf(checkpoint.model, file.name);
    // Loaded before it replaces the page's model, so a file that fails to load leaves that model as it was.
    const m = new CifarResNet(arch.depth, arch.classes, 0, arch.widths);
    try {
      m.loadStateDict(checkpoint.model);
    } catch (error) {
      m.dispose();
      throw error;
    }
    installModel(m);
    // An SFP run's masks, applied as Node's eval, export and compact apply them; the page's compaction uses them
    // until its own masking replaces them. Momentum is not loaded.
    const applied = await applyMasks(m, checkpoint.masks);
    if (checkpoint.masks.size) checkpointMasks = FilterMasks.fromByName(checkpoint.masks);
    const meta = JSON.stringify(checkpoint.meta, null, 1);
    $('ckpt-info').textContent =
      `${file.name}: ResNet-${arch.depth} ${arch.widths.join('/')}, ${arch.classes} classes, ${checkpoint.model.size} tensors, ` +
      `${checkpoint.optimizer.size} momentum buffers (not loaded: training here starts with none), ${checkpoint.masks.size} masks` +
      (applied ? ` (compaction uses them until SFP masks are applied here)\n${masksAppliedLine(applied)}` : '') +
      `\nmeta: ${meta.length > 1500 ? meta.slice(0, 1500) + '…' : meta}`;
    if (arch.classes === 10) {
      const data = await getDataset();
      showPredictions(`Predictions of ${file.name}`, data, null, await predict(m, data, 8));
    }
    setStatus(`loaded ${file.name}`);
  });
});

/** The compact model last loaded from a file (written by `sfp-gpu compact` in Node). */
let loadedCompact: CompactResNet | null = null;

async function showCompactModel(name: string, compact: CompactResNet, meta: Record<string, unknown>): Promise<void> {
  loadedCompact?.dispose();
  loadedCompact = compact;
  const equivalence = meta.equivalence as { images?: number; maxAbsDiff?: number; predictionMismatches?: number } | undefined;
  $('ckpt-info').textContent =
    `${name}: compact model, ${compact.parameterCount()} parameters, input ${compact.inputSize.join('×')}\n` +
    (equivalence ? `checked in Node on ${equivalence.images} test images: max |Δlogit| ${equivalence.maxAbsDiff}, ${equivalence.predictionMismatches} predictions differ\n` : '') +
    `plan:\n${compact.plan.toString()}`;
  const data = await getDataset();
  showPredictions(`Predictions of the compact model ${name}`, data, null, await predict(compact, data, 8));
  setStatus(`loaded ${name}`);
}

action('ckpt-save', async () => {
  const m = model ?? newModel();
  const names = new Map(m.namedParameters().map(([n, t]) => [t, n]));
  const momentum = new Map<string, Tensor>();
  for (const [param, v] of optimizer?.velocity ?? []) momentum.set(names.get(param)!, v);
  const masks = currentMasks()?.byName() ?? new Map<string, Uint32Array>();
  const host = await checkpointToHost({
    model: m.stateDict(),
    optimizer: momentum,
    masks,
    meta: { source: 'sfp-gpu web page', widths: m.widths, optimizerSteps: optimizer?.stepCount ?? 0 },
  });
  const bytes = encodeCheckpoint(host, 'browser checkpoint');
  const url = URL.createObjectURL(new Blob([bytes as Uint8Array<ArrayBuffer>], { type: 'application/octet-stream' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = `resnet${m.depth}-${m.widths.join('-')}.safetensors`;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
  setStatus(`checkpoint written (${(bytes.length / 1024).toFixed(0)} KiB)`);
});

// ---------------------------------------------------------------- self-check

/** Runs web/checks.ts and lists the results (shape and sum of each) on the page. */
async function selfCheck(): Promise<ChecksReport> {
  setStatus('running the kernel checks…');
  const report = await runChecks();
  const lines = report.results.map((r) => {
    let sum = 0;
    for (const v of r.data) sum += v;
    return `${r.name.padEnd(56)} [${r.shape.join(',')}]`.padEnd(74) + ` Σ = ${sum.toPrecision(7)}`;
  });
  $('check-out').textContent = `${report.results.length} results, ${report.kernels} kernels, ${report.milliseconds.toFixed(0)} ms\n${lines.join('\n')}`;
  setStatus(`kernel checks ran in ${report.milliseconds.toFixed(0)} ms (${report.results.length} results; test/browser/page.test.ts compares them with Node)`);
  return report;
}

action('check-run', async () => void (await selfCheck()));

// ---------------------------------------------------------------- start

window.sfp = {
  ready: false,
  error: null,
  adapter: null,
  lastCompact: null,
  checks: () => settled('checks', selfCheck),
  train: (steps = 3, batch = 16) => settled('train', () => train(steps, batch)),
  prune: () => settled('prune', applySfp),
  compact: (options) => settled('compact', () => compactPruned(options)),
  forward: (x, shape) =>
    settled('forward', async () => {
      if (!model) throw new Error('no model: train, prune or load a checkpoint first');
      const m = model;
      m.eval();
      const logits = scope(() => noGrad(() => m.forward(Tensor.fromArray(x, shape)).keep()));
      m.train();
      const values = Array.from(await logits.toArray());
      logits.dispose();
      return values;
    }),
  memory: () => {
    const { pooledBytes, stagingBuffers, liveBytes } = gpu().stats();
    return { pooledBytes, stagingBuffers, liveBytes };
  },
  forwardCompact: (x, shape) =>
    settled('forward', async () => {
      const m = loadedCompact;
      if (!m) throw new Error('no compact model: load one through the checkpoint input first');
      const logits = scope(() => noGrad(() => m.forward(Tensor.fromArray(x, shape)).keep()));
      const values = Array.from(await logits.toArray());
      logits.dispose();
      return values;
    }),
};

async function start(): Promise<void> {
  const t0 = performance.now();
  try {
    const rt = await init('./shaders/');
    window.sfp.adapter = showAdapter(rt);
    // File inputs too: without a device, loading a file could only fail with a less useful message. The widths
    // choice too: changing it drops the model, which an action must not see happen.
    document.querySelectorAll<HTMLButtonElement | HTMLInputElement | HTMLSelectElement>('button, input[type=file], select').forEach((b) => {
      b.dataset.ready = '';
      b.disabled = false;
    });
    setStatus(`WebGPU ready in ${(performance.now() - t0).toFixed(0)} ms (${rt.stats().pipelines} pipelines so far, shaders compiled)`);
    window.sfp.ready = true;
    // Said at once, not at the next click: nothing on the page works again without a reload.
    void rt.device.lost.then((info) => {
      if (info.reason !== 'destroyed') setStatus(`the GPU device was lost (${info.message || info.reason}): reload the page`, true);
    });
  } catch (error) {
    window.sfp.error = message(error);
    setStatus(message(error), true);
  }
}

void start();
