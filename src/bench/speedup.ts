/**
 * Real vs theoretical speedup of a compact model over its dense original, per layer and end to end.
 *
 * Method (the same for every layer and batch size): each layer runs alone on fixed inputs captured from one
 * eval-mode forward pass, and the end-to-end row runs the model's own forward. A sample is `inner`
 * back-to-back repetitions recorded into the command stream, bracketed by gpu().sync() (the GPU idle before,
 * finished after), divided by `inner`; `inner` is chosen once per row so a sample lasts about `targetMs`.
 * So a time includes what a caller pays per forward on this runtime (encoding, submits, per-dispatch overhead
 * on the device), not only kernel time. The dense and compact rows of one layer are sampled back to back, in
 * alternating order, `repeats` times, so load changes hit both; the speedup range is the p10–p90 of the
 * per-repeat ratios. FLOPs are prune/flops.ts's counts of the modules that run (a multiply-add is 1 FLOP,
 * as in the SFP paper); GFLOP/s counts a multiply-add as 2, as hardware peaks do.
 */
import { Tensor, scope } from '../tensor/tensor.js';
import { Rng } from '../tensor/random.js';
import { noGrad } from '../autograd/mode.js';
import { gpu } from '../gpu/encoder.js';
import { tuneConv2d, type Conv2dTuning } from '../ops/conv2d.js';
import { quantile } from '../stats.js';
import type { LayerFlops } from '../prune/flops.js';
import type { BenchNetwork, LayerKind } from './networks.js';

/** Milliseconds per forward: median and the 10th and 90th percentiles over repeats, with every sample. */
export interface TimeStats {
  median: number;
  p10: number;
  p90: number;
  samples: number[];
}

export interface SideResult {
  /** FLOPs of one forward of the batch (flops.ts convention). */
  flops: number;
  /** Multiply-adds of one forward of the batch. */
  macs: number;
  ms: TimeStats;
  /** (2·MACs + other FLOPs) / median time. */
  gflops: number;
}

export interface RowResult {
  /** A layer name, or `end to end`. */
  name: string;
  kind: LayerKind | 'network';
  dense: SideResult;
  compact: SideResult;
  /** dense FLOPs / compact FLOPs. */
  theoreticalSpeedup: number;
  /** Median of the per-repeat ratios dense / compact (the samples are paired), so it lies inside its range. */
  realSpeedup: number;
  /** p10 and p90 of the per-repeat ratios dense / compact. */
  realSpeedupRange: [number, number];
  /** Repetitions per sample. */
  inner: number;
}

export interface BatchResult {
  batch: number;
  repeats: number;
  endToEnd: RowResult;
  layers: RowResult[];
  /** Sum of the layers' medians, to compare with end to end. */
  sumOfLayersMs: { dense: number; compact: number };
  /** The 3×3 conv blocks measured before timing (shapes tuned at an earlier batch are not repeated). */
  tuning?: Conv2dTuning[];
}

export interface ModelResult {
  /** e.g. `resnet20`, `imagenet-resnet50`. */
  name: string;
  /** Where the two models come from (checkpoint, random mask, ...). */
  source: string;
  /** True when the compact model was built from channel counts with random weights (not equivalent to the dense one). */
  timingOnly: boolean;
  notes: string[];
  inputShape: number[];
  parameters: { dense: number; compact: number };
  batches: BatchResult[];
}

export interface MachineInfo {
  adapter: string;
  platform?: string;
  cpus?: string;
  cores?: number;
  node?: string;
  /** 1-minute load average when the run started and ended (another process may be using the machine). */
  loadAverage?: { start: number[]; end?: number[] };
  /** Share of all cores' time that other processes used during the run (Linux), unlike the load average without this process's threads. */
  otherProcessesCpu?: number;
  /** Share of all cores' time the hypervisor gave to other machines (Linux's steal). */
  stolenCpu?: number;
  [extra: string]: unknown;
}

export interface SpeedupReport {
  format: 'sfp-gpu speedup';
  version: 1;
  date: string;
  machine: MachineInfo;
  method: string;
  models: ModelResult[];
}

export const METHOD =
  'eval-mode forward; each layer alone on fixed captured inputs, end to end through the model\'s forward; a sample = N back-to-back ' +
  'repetitions between gpu().sync() calls, divided by N; dense and compact sampled back to back in alternating order; ' +
  'median and p10–p90 over repeats; before timing, each 3×3 conv shape of both models gets the block (channels per workgroup, output rows per lane) ' +
  'with the lowest median time in a measurement before (ops/conv2d.ts tuneConv2d); FLOPs from prune/flops.ts (multiply-add = 1 FLOP); GFLOP/s with multiply-add = 2';

export interface MeasureOptions {
  batchSizes: readonly number[];
  repeats: number;
  /** Aim for samples about this long (ms); default 50. */
  targetMs?: number;
  /** At most this many repetitions per sample; default 64. */
  maxInner?: number;
  /** Seed of the random input images. */
  seed?: number;
  /** Progress lines. */
  log?: (line: string) => void;
}

export function timeStats(samples: readonly number[]): TimeStats {
  return { median: quantile(samples, 0.5), p10: quantile(samples, 0.1), p90: quantile(samples, 0.9), samples: [...samples] };
}

function sumFlops(parts: readonly LayerFlops[]): { flops: number; macs: number } {
  return parts.reduce((s, f) => ({ flops: s.flops + f.total, macs: s.macs + f.macs }), { flops: 0, macs: 0 });
}

function side(perImage: { flops: number; macs: number }, batch: number, samples: readonly number[]): SideResult {
  const flops = perImage.flops * batch;
  const macs = perImage.macs * batch;
  const ms = timeStats(samples);
  return { flops, macs, ms, gflops: (flops + macs) / (ms.median * 1e6) };
}

/** A row from per-image counts and the paired samples (ms per forward) of both models. */
export function rowResult(
  name: string,
  kind: RowResult['kind'],
  batch: number,
  flops: { dense: { flops: number; macs: number }; compact: { flops: number; macs: number } },
  samples: { dense: readonly number[]; compact: readonly number[] },
  inner = 1,
): RowResult {
  const dense = side(flops.dense, batch, samples.dense);
  const compact = side(flops.compact, batch, samples.compact);
  const ratios = samples.dense.map((d, i) => d / samples.compact[i]);
  return {
    name,
    kind,
    dense,
    compact,
    theoreticalSpeedup: dense.flops / compact.flops,
    realSpeedup: quantile(ratios, 0.5),
    realSpeedupRange: [quantile(ratios, 0.1), quantile(ratios, 0.9)],
    inner,
  };
}

/** Runs every layer once on `x` and keeps each output (the fixed inputs of the per-layer timing). */
export function captureOutputs(network: BenchNetwork, x: Tensor): Tensor[] {
  return noGrad(() => {
    const outs: Tensor[] = [];
    for (const layer of network.layers) {
      outs.push(scope(() => layer.forward(layer.inputs.map((j) => (j < 0 ? x : outs[j])))).keep());
    }
    return outs;
  });
}

/**
 * Milliseconds per repetition of `run`, over `inner` back-to-back repetitions. Each repetition's tensors go back to
 * the pool before the next starts, as between inference calls, so the repetitions reuse one set of buffers and bind groups.
 */
async function sample(run: () => void, inner: number): Promise<number> {
  await gpu().sync();
  const start = performance.now();
  noGrad(() => {
    for (let i = 0; i < inner; i++) scope(() => void run());
  });
  await gpu().sync();
  return (performance.now() - start) / inner;
}

interface Row {
  name: string;
  kind: RowResult['kind'];
  dense: () => void;
  compact: () => void;
  flops: { dense: { flops: number; macs: number }; compact: { flops: number; macs: number } };
}

/** Times both networks at every batch size; the layer lists must pair up by name. */
export async function measureSpeedup(dense: BenchNetwork, compact: BenchNetwork, options: MeasureOptions): Promise<BatchResult[]> {
  const names = (n: BenchNetwork) => n.layers.map((l) => l.name).join(',');
  if (names(dense) !== names(compact)) throw new Error(`speedup: the dense and compact layer lists differ:\n${names(dense)}\n${names(compact)}`);
  const targetMs = options.targetMs ?? 50;
  const maxInner = options.maxInner ?? 64;
  const rng = new Rng(options.seed ?? 1);
  const results: BatchResult[] = [];
  for (const batch of options.batchSizes) {
    const [c, h, w] = dense.inputShape;
    const x = Tensor.fromArray(Float32Array.from({ length: batch * c * h * w }, () => rng.normal()), [batch, c, h, w]).keep();
    // Both models run the 3×3 conv blocks measured best for their own shapes.
    const tuning: Conv2dTuning[] = [];
    for (const network of [dense, compact]) tuning.push(...(await tuneConv2d(() => noGrad(() => scope(() => void network.forward(x))))));
    for (const t of tuning) options.log?.(`batch ${batch}: conv ${t.shape} runs block ${t.chosen} (${Object.entries(t.ms).map(([block, ms]) => `${block}: ${ms.toFixed(2)} ms`).join(', ')})`);
    const denseOuts = captureOutputs(dense, x);
    const compactOuts = captureOutputs(compact, x);
    try {
      const layerRun = (network: BenchNetwork, outs: Tensor[], i: number) => {
        const layer = network.layers[i];
        const inputs = layer.inputs.map((j) => (j < 0 ? x : outs[j]));
        return () => void layer.forward(inputs);
      };
      const rows: Row[] = [
        {
          name: 'end to end',
          kind: 'network',
          dense: () => void dense.forward(x),
          compact: () => void compact.forward(x),
          flops: { dense: sumFlops(dense.layers.map((l) => l.flops)), compact: sumFlops(compact.layers.map((l) => l.flops)) },
        },
        ...dense.layers.map((l, i): Row => ({
          name: l.name,
          kind: l.kind,
          dense: layerRun(dense, denseOuts, i),
          compact: layerRun(compact, compactOuts, i),
          flops: { dense: sumFlops([l.flops]), compact: sumFlops([compact.layers[i].flops]) },
        })),
      ];
      // Warm-up (pipelines, pool, bind groups) and the repetitions per sample, from the dense model; then a
      // sample of that many on both sides.
      const inner: number[] = [];
      for (const row of rows) {
        await sample(row.compact, 1);
        await sample(row.dense, 1);
        const once = await sample(row.dense, 1);
        const n = Math.min(maxInner, Math.max(1, Math.ceil(targetMs / Math.max(once, 1e-3))));
        await sample(row.compact, n);
        await sample(row.dense, n);
        inner.push(n);
      }
      const samples = rows.map(() => ({ dense: [] as number[], compact: [] as number[] }));
      for (let r = 0; r < options.repeats; r++) {
        for (const [i, row] of rows.entries()) {
          const order = r % 2 === 0 ? (['dense', 'compact'] as const) : (['compact', 'dense'] as const);
          for (const which of order) samples[i][which].push(await sample(row[which], inner[i]));
        }
        options.log?.(`batch ${batch}: repeat ${r + 1}/${options.repeats}, end to end ${samples[0].dense.at(-1)!.toFixed(2)} ms dense, ${samples[0].compact.at(-1)!.toFixed(2)} ms compact`);
      }
      const all = rows.map((row, i) => rowResult(row.name, row.kind, batch, row.flops, samples[i], inner[i]));
      const [endToEnd, ...layers] = all;
      results.push({
        batch,
        repeats: options.repeats,
        endToEnd,
        layers,
        sumOfLayersMs: {
          dense: layers.reduce((s, l) => s + l.dense.ms.median, 0),
          compact: layers.reduce((s, l) => s + l.compact.ms.median, 0),
        },
        tuning,
      });
    } finally {
      for (const t of [x, ...denseOuts, ...compactOuts]) t.dispose();
    }
  }
  return results;
}
