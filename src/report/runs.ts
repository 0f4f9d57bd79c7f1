/**
 * Training results as Markdown: metrics.jsonl parsed and summarised (final and best accuracy, median
 * throughput, total time), one run's report, and the baseline / SFP / hard-pruning comparison with the paper's
 * numbers beside ours. Pure functions of text and objects; src/cli/report.ts reads and writes the files.
 */
import type { EpochRecord } from '../train/trainer.js';
import { CIFAR_DEPTHS } from '../models/resnet.js';
import { paperConvFlops } from '../prune/flops.js';
import { convRatesOf, type RateOptions } from '../prune/criteria.js';
import { PAPER, paperRowFor, type PaperChoice, type PaperKey, type PaperResult } from './paper.js';
import { median } from '../stats.js';

/** run.json, written by `train` when a run starts, with one entry per resume. */
export interface RunRecord {
  command: string;
  config: Record<string, unknown>;
  data: string;
  /** null when a resume wrote the first record (the run began before run.json existed). */
  startedAt: string | null;
  resumes?: { command: string; startedAt: string }[];
  /** SHA-256 of the --pretrained checkpoint as the run read it. */
  pretrainedSha256?: string;
}

/** One run folder as the report sees it. */
export interface RunResults {
  records: EpochRecord[];
  config: Record<string, unknown>;
  command: string;
  /** The command was rebuilt from the checkpoint's config (no run.json). */
  reconstructed: boolean;
  data?: string;
  pretrainedSha256?: string;
}

const REQUIRED = ['epoch', 'trainAccuracy', 'testAccuracy', 'seconds', 'imagesPerSecond'] as const;

/** metrics.jsonl's records in epoch order; errors name the file and line. */
export function parseMetrics(text: string, source = 'metrics.jsonl'): EpochRecord[] {
  const byEpoch = new Map<number, EpochRecord>();
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    let record: Record<string, unknown>;
    try {
      record = JSON.parse(line);
    } catch (error) {
      throw new Error(`${source}:${i + 1}: not JSON (${(error as Error).message}): ${line.slice(0, 80)}`);
    }
    for (const key of REQUIRED) {
      if (typeof record[key] !== 'number') throw new Error(`${source}:${i + 1}: "${key}" is missing or not a number`);
    }
    // A run stopped between writing an epoch's record and its checkpoint repeats that epoch on resume: the later record wins.
    byEpoch.set(record.epoch as number, record as EpochRecord);
  });
  if (byEpoch.size === 0) throw new Error(`${source}: no epoch recorded yet`);
  return [...byEpoch.values()].sort((a, b) => a.epoch - b.epoch);
}

export function parseRunRecord(text: string, source = 'run.json'): RunRecord {
  let record: Partial<RunRecord>;
  try {
    record = JSON.parse(text);
  } catch (error) {
    throw new Error(`${source}: not JSON (${(error as Error).message})`);
  }
  if (typeof record.command !== 'string' || typeof record.config !== 'object' || record.config === null) {
    throw new Error(`${source}: needs "command" (a string) and "config" (an object)`);
  }
  return record as RunRecord;
}

export interface EpochAccuracy {
  epoch: number;
  accuracy: number;
}

export interface RunSummary {
  epochs: number;
  final: EpochAccuracy;
  best: EpochAccuracy;
  /** Pruned runs: the accuracy after masking, i.e. of the model compaction keeps. */
  finalMasked?: EpochAccuracy;
  bestMasked?: EpochAccuracy;
  /** Medians over epochs: an epoch resumed mid-way may record only its resumed part. */
  imagesPerSecond: number;
  secondsPerEpoch: number;
  totalSeconds: number;
  /** The last record's exact count for the compact model (all ops) and its reduction, for pruned runs. */
  flops?: number;
  flopsReduction?: number;
  regrown?: number;
}

function bestOf(records: readonly EpochRecord[], key: string): EpochAccuracy | undefined {
  let best: EpochAccuracy | undefined;
  for (const r of records) {
    const accuracy = r[key];
    if (typeof accuracy === 'number' && (!best || accuracy > best.accuracy)) best = { epoch: r.epoch, accuracy };
  }
  return best;
}

export function summariseRun(records: readonly EpochRecord[]): RunSummary {
  const last = records[records.length - 1];
  const num = (v: unknown) => (typeof v === 'number' ? v : undefined);
  const masked = num(last.testAccuracyMasked);
  return {
    epochs: records.length,
    final: { epoch: last.epoch, accuracy: last.testAccuracy },
    best: bestOf(records, 'testAccuracy')!,
    finalMasked: masked === undefined ? undefined : { epoch: last.epoch, accuracy: masked },
    bestMasked: bestOf(records, 'testAccuracyMasked'),
    imagesPerSecond: median(records.map((r) => r.imagesPerSecond)),
    secondsPerEpoch: median(records.map((r) => r.seconds)),
    totalSeconds: records.reduce((sum, r) => sum + r.seconds, 0),
    flops: num(last.flops),
    flopsReduction: num(last.flopsReduction),
    regrown: num(last.regrown),
  };
}

const percent = (fraction: number) => `${(100 * fraction).toFixed(2)} %`;
const reduction = (fraction: number) => `${(100 * fraction).toFixed(1)} %`;
/** 2.343E7, the paper's notation. */
const sci = (v: number) => {
  const [mantissa, exponent] = v.toExponential(3).split('e');
  return `${Number(mantissa)}E${Number(exponent)}`;
};

function modelOf(config: Record<string, unknown>): { name: string; depth: number; title: string } {
  const name = String(config.model);
  if (!Object.hasOwn(CIFAR_DEPTHS, name)) throw new Error(`config.model is '${name}', not one of ${Object.keys(CIFAR_DEPTHS).join(', ')}`);
  const depth = CIFAR_DEPTHS[name as keyof typeof CIFAR_DEPTHS];
  return { name, depth, title: `ResNet-${depth}` };
}

/** The pruner options a run's config (its `train` flags) asked for, or null for a dense run. */
function pruneOptionsOf(config: Record<string, unknown>): RateOptions | null {
  const stageRates = Array.isArray(config.stageRates) && config.stageRates.length > 0 ? (config.stageRates as number[]) : null;
  const rate = stageRates ?? (typeof config.sfpRate === 'number' && config.sfpRate > 0 ? config.sfpRate : null);
  if (rate === null) return null;
  return { rate, skipStem: config.skipStem === true, skipLast: config.skipLast === true, asymptotic: config.asymptotic === true };
}

/** The run's one rate, an array for a rate per stage, or 0 for a dense run. */
const rateOf = (config: Record<string, unknown>) => pruneOptionsOf(config)?.rate ?? 0;
const ratePercent = (rate: number | readonly number[]) =>
  typeof rate === 'number' ? `${Math.round(rate * 1000) / 10} %` : `${rate.map((r) => Math.round(r * 1000) / 10).join(' / ')} % by stage`;

/** The paper's conv FLOPs of the model a run ends with (its final rates; the baseline's for a dense run). */
function runPaperFlops(config: Record<string, unknown>, depth: number): number {
  const options = pruneOptionsOf(config);
  return paperConvFlops(depth, options ? convRatesOf(options, 3) : 0);
}

function pruningOf(config: Record<string, unknown>): string {
  const rate = rateOf(config);
  if (rate === 0) return 'none';
  const positive = (v: unknown): v is number => typeof v === 'number' && v > 0;
  const notes = [String(config.criterion ?? 'l2')];
  if (config.skipStem) notes.push('stem unpruned');
  if (config.skipLast) notes.push("blocks' last convs unpruned");
  if (config.asymptotic) notes.push('ASFP');
  if (config.coupled) notes.push('coupled');
  if (!config.hardPrune && typeof config.pruneEvery === 'number' && config.pruneEvery > 1) notes.push(`masks every ${config.pruneEvery} epochs`);
  if (!config.hardPrune && positive(config.pruneEverySteps)) notes.push(`masks also every ${config.pruneEverySteps === 1 ? 'step' : `${config.pruneEverySteps} steps`}`);
  if (positive(config.bnRecalibrate)) notes.push(`BN recalibrated on ${config.bnRecalibrate} batches`);
  if (typeof config.pretrained === 'string') notes.push('from pretrained');
  // Written by scripts/torch-sfp-crosscheck.py: the same run in another framework.
  if (typeof config.engine === 'string') notes.push(`run in ${config.engine}`);
  return `${config.hardPrune ? 'hard' : 'soft (SFP)'} ${ratePercent(rate)} (${notes.join(', ')})`;
}

function describeConfig(config: Record<string, unknown>): string {
  const { epochs, schedule, lr, batchSize } = config;
  return `${modelOf(config).title}, ${epochs} epochs, ${schedule} schedule, peak lr ${lr}, batch ${batchSize}, pruning: ${pruningOf(config)}`;
}

/** Whether the run stopped before its last epoch (its records end before config.epochs). */
function isUnfinished(run: RunResults): boolean {
  return run.records[run.records.length - 1].epoch < Number(run.config.epochs);
}

/** A run's report body (report.md puts a title above it; a README block is the body alone). `chartHref`: the chart as seen from the Markdown file. */
export function runMarkdown(run: RunResults, chartHref: string): string {
  const s = summariseRun(run.records);
  const unfinished = isUnfinished(run);
  // An unfinished run's last epoch is not its final one: the report says so wherever it would say "final".
  const last = unfinished ? 'last recorded' : 'final';
  const rows: [string, string][] = [];
  // A pruned run leads with the model it leaves (after masking, as compaction keeps it); the unmasked
  // accuracy, measured before each epoch's masking, describes a model that is never saved.
  if (s.finalMasked) rows.push([`${last} test accuracy after masking (epoch ${s.finalMasked.epoch})`, percent(s.finalMasked.accuracy)]);
  if (s.bestMasked) rows.push([`best test accuracy after masking (epoch ${s.bestMasked.epoch})`, percent(s.bestMasked.accuracy)]);
  const unmasked = s.finalMasked ? ' before masking' : '';
  rows.push(
    [`${last} test accuracy${unmasked} (epoch ${s.final.epoch})`, percent(s.final.accuracy)],
    [`best test accuracy${unmasked} (epoch ${s.best.epoch})`, percent(s.best.accuracy)],
  );
  rows.push(
    ['images/s (median over epochs)', s.imagesPerSecond.toFixed(1)],
    ['time per epoch (median)', `${(s.secondsPerEpoch / 60).toFixed(1)} min`],
    ['total time (sum over epochs)', `${(s.totalSeconds / 3600).toFixed(2)} h`],
  );
  if (s.flops !== undefined && s.flopsReduction !== undefined) {
    rows.push(['FLOPs of the compact model (all ops, exact)', `${sci(s.flops)} (−${reduction(s.flopsReduction)})`]);
  }
  if (s.regrown !== undefined) rows.push(['filters that changed at the last masking', String(s.regrown)]);
  return [
    '```sh',
    run.command,
    '```',
    '',
    (run.reconstructed ? 'Command rebuilt from the checkpoint\'s config (the run has no run.json). ' : '') +
      `${describeConfig(run.config)}; ${s.epochs} epoch${s.epochs === 1 ? '' : 's'} recorded` +
      (unfinished ? ` (unfinished: its last record is epoch ${s.final.epoch} of ${run.config.epochs}).` : '.') +
      (run.data ? ` Data: ${run.data}.` : ''),
    '',
    '| measure | value |',
    '|---|--:|',
    ...rows.map(([k, v]) => `| ${k} | ${v} |`),
    '',
    `![train and test accuracy per epoch](${chartHref})`,
    '',
    'Images/s and time per epoch are medians over the epochs (an epoch resumed mid-way by an older trainer recorded only its resumed part); ' +
      'the total time is the sum of the recorded epoch times.',
    '',
    ...epochTable(run.records),
    '',
  ].join('\n');
}

/** One row per epoch: the curve in numbers, and the throughput of each epoch (runs span engine versions). */
function epochTable(records: readonly EpochRecord[]): string[] {
  const masked = records.some((r) => typeof r.testAccuracyMasked === 'number');
  const stale = records.some((r) => typeof r.testAccuracyMaskedStaleBN === 'number');
  const header = [
    'epoch',
    'lr',
    'train loss',
    'train acc',
    'test acc',
    ...(stale ? ['after masking, old BN statistics'] : []),
    ...(masked ? [stale ? 'after masking, BN recalibrated' : 'test acc after masking'] : []),
    'images/s',
    'minutes',
  ];
  const cell = (v: unknown) => (typeof v === 'number' ? percent(v) : '');
  const row = (r: EpochRecord) => [
    String(r.epoch),
    r.lr.toPrecision(3),
    r.trainLoss.toFixed(4),
    percent(r.trainAccuracy),
    percent(r.testAccuracy),
    ...(stale ? [cell(r.testAccuracyMaskedStaleBN)] : []),
    ...(masked ? [cell(r.testAccuracyMasked)] : []),
    r.imagesPerSecond.toFixed(1),
    (r.seconds / 60).toFixed(1),
  ];
  return [
    `| ${header.join(' | ')} |`,
    `|${header.map(() => '--:').join('|')}|`,
    ...records.map((r) => `| ${row(r).join(' | ')} |`),
  ];
}

/** A row of the comparison; `notFromBaseline`: the checkpoint a fine-tuned run started from, when it is not the baseline's. */
export interface ComparedRun {
  name: string;
  run: RunResults;
  notFromBaseline?: string;
}

/**
 * Our runs beside the paper's rows: the first run is the baseline (--sfp-rate 0) that drops are measured from.
 * Conv FLOPs use the paper's formula for each run's model and rate (src/prune/flops.ts), so they compare with
 * the paper's column; the compact model's exact count (all ops) comes from the run's last record.
 */
export function compareMarkdown(runs: readonly ComparedRun[], paperChoice?: PaperChoice): string {
  if (runs.length === 0) throw new Error('compare: no runs given');
  const [base] = runs;
  if (rateOf(base.run.config) !== 0) {
    throw new Error(`compare: the first run is the baseline, but '${base.name}' was trained with --sfp-rate ${rateOf(base.run.config)}`);
  }
  const model = modelOf(base.run.config);
  // auto: the paper's row for the one rate every pruned run shares (none for mixed or per-stage rates).
  const prunedRates = runs.map(({ run }) => rateOf(run.config)).filter((r) => r !== 0);
  const rates = [...new Set(prunedRates.map(ratePercent))];
  const [rate] = prunedRates;
  const paperKey: PaperKey | undefined =
    paperChoice !== 'auto' ? paperChoice : rates.length === 1 && typeof rate === 'number' ? paperRowFor(model.name, rate) : undefined;
  const paper: PaperResult | undefined = paperKey && PAPER[paperKey];
  for (const { name, run } of runs) {
    const other = modelOf(run.config).name;
    if (other !== model.name) throw new Error(`compare: '${name}' is ${other}, the baseline '${base.name}' is ${model.name}`);
    const rate = rateOf(run.config);
    if (paper && (paper.model !== other || (rate !== 0 && rate !== paper.rate))) {
      throw new Error(`compare: --paper ${paperKey} is ${paper.model} at rate ${paper.rate}, but '${name}' is ${other} at rate ${rate}`);
    }
  }
  // The accuracy of the model a run leaves: after the last masking for pruned runs, as compaction keeps it.
  const summaries = runs.map(({ run }) => summariseRun(run.records));
  const accuracies = summaries.map((s) => (s.finalMasked ?? s.final).accuracy);
  const baseFlops = paperConvFlops(model.depth, 0);
  const header = ['method', 'pruning', 'epochs', 'test accuracy', 'drop (points)', 'conv FLOPs', 'FLOPs ↓', 'compact model FLOPs ↓ (all ops)'];
  const paperHeader = ['paper: test accuracy', 'paper: drop', 'paper: conv FLOPs', 'paper: FLOPs ↓'];
  const rows = runs.map(({ name, run }, i) => {
    const s = summaries[i];
    const flops = runPaperFlops(run.config, model.depth);
    const cells = [
      name,
      pruningOf(run.config),
      `${s.epochs} of ${run.config.epochs}${isUnfinished(run) ? ' (unfinished)' : ''}`,
      percent(accuracies[i]),
      i === 0 ? '–' : (100 * (accuracies[0] - accuracies[i])).toFixed(2),
      sci(flops),
      reduction(1 - flops / baseFlops),
      s.flopsReduction === undefined ? '–' : reduction(s.flopsReduction),
    ];
    if (paper) cells.push(...paperCells(paper, run.config));
    return `| ${cells.join(' | ')} |`;
  });
  const columns = paper ? [...header, ...paperHeader] : header;
  const notes = [
    "Test accuracy: the last epoch's, after masking for pruned runs. Conv FLOPs: the paper's formula (3×3 convs, a multiply-add = 1, " +
      "float keep ratio; `paperConvFlops` in src/prune/flops.ts) for each run's model and the rate of each of its convs. Compact model: the exact count " +
      "(convs, BN, ReLU, adds, pool, classifier) of the model compaction builds from the last masks, from the run's last record.",
  ];
  const unfinished = runs.filter(({ run }) => isUnfinished(run));
  if (unfinished.length) {
    notes.push(
      `Unfinished, so their accuracy is that of an epoch before their schedule's end and not comparable with a finished run's: ${unfinished
        .map(({ name, run }) => `${name} (epoch ${run.records[run.records.length - 1].epoch} of ${run.config.epochs})`)
        .join(', ')}.`,
    );
  }
  const strays = runs.filter((r) => r.notFromBaseline !== undefined);
  if (strays.length) {
    notes.push(
      `Not fine-tuned from the baseline's checkpoint, so their drops are measured from a model they did not start from: ${strays
        .map((r) => `${r.name} (from ${r.notFromBaseline})`)
        .join(', ')}.`,
    );
  }
  if (paper) {
    notes.push(
      `Paper: SFP (He et al., IJCAI 2018) Table 1, ${modelOf({ model: paper.model }).title} at ${ratePercent(paper.rate)}, ` +
        'trained from scratch (200 epochs in the official scripts), as the FPGM paper (He et al., CVPR 2019) reprints it in its Table 1. ' +
        'n/r: the paper has no such row.',
    );
    if (paper.note) notes.push(paper.note);
  } else if (paperChoice === 'auto') {
    notes.push(`Paper: no row beside these runs (the paper's Table 1 has none for ${model.title} at ${rates.join(' and ') || '0 %'}).`);
  }
  const align = columns.map((_, i) => (i < 2 ? '---' : '--:'));
  return [`| ${columns.join(' | ')} |`, `|${align.join('|')}|`, ...rows, '', ...notes.flatMap((n) => [n, ''])].join('\n');
}

function paperCells(paper: PaperResult, config: Record<string, unknown>): string[] {
  const rate = rateOf(config);
  if (rate === 0) return [`${paper.baselineAccuracy.toFixed(2)} %`, '–', sci(paper.baselineFlops), '0.0 %'];
  // The paper's rows prune every conv softly, at one rate, by the L2 norm, at epoch ends: a run that differs
  // (hard pruning, unpruned convs, ASFP, coupled masks, masks inside epochs, L1 or FPGM) has no paper row.
  const beyondPaper =
    config.hardPrune || config.skipStem || config.skipLast || config.asymptotic || config.coupled || Number(config.pruneEverySteps ?? 0) > 0 || (config.criterion ?? 'l2') !== 'l2';
  if (beyondPaper) return ['n/r', 'n/r', 'n/r', 'n/r'];
  return [`${paper.sfpAccuracy.toFixed(2)} %`, paper.drop.toFixed(2), sci(paper.sfpFlops), `${paper.reduction.toFixed(1)} %`];
}
